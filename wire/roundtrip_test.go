package wire

import (
	"encoding/json"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/presence-cluster/presence/messages"
)

// The round-trip tests encode with the hand-written encoders and decode
// with encoding/json into the declared types: the two descriptions of each
// body must agree.

func timeOf(us int64) *time.Time {
	if us == 0 {
		return nil
	}
	t := time.UnixMicro(us).UTC()
	return &t
}

func presenceOf(st *messages.UserState) Presence {
	return Presence{
		UserID: st.GetUserId(), Username: st.GetUsername(), IsOnline: st.GetIsOnline(), IsBusy: st.GetIsBusy(),
		BusyUntil: timeOf(st.GetBusyUntil()), LastSeen: timeOf(st.GetLastSeen()), Version: st.GetVersion(),
	}
}

var roundTripStates = []*messages.UserState{
	{},
	{UserId: 1, Username: "alice", IsOnline: true, LastSeen: usOf("2024-01-15T10:30:00Z"), CreatedAt: usOf("2024-01-15T10:00:00Z"),
		UpdatedAt: usOf("2024-01-15T10:30:00Z"), Version: 2},
	{UserId: 9223372036854775807, Username: "Zoë \"q\" \\ 日本", IsBusy: true, BusyUntil: usOf("2030-01-15T11:00:00.5Z"),
		LastSeen: usOf("2024-01-15T10:30:00.123456Z"), CreatedAt: 1, UpdatedAt: -1, Version: 1<<64 - 1},
}

func decode[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %T: %v: %s", v, err, b)
	}
	return v
}

func TestRoundTripStatus(t *testing.T) {
	for _, st := range roundTripStates {
		got := decode[Status](t, AppendStatus(nil, st))
		want := Status{
			UserID: st.GetUserId(), IsOnline: st.GetIsOnline(), IsBusy: st.GetIsBusy(), BusyUntil: timeOf(st.GetBusyUntil()),
			LastSeen: timeOf(st.GetLastSeen()), CreatedAt: timeOf(st.GetCreatedAt()), UpdatedAt: timeOf(st.GetUpdatedAt()),
			Version: st.GetVersion(),
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("AppendStatus(%v) decodes to %+v, want %+v", st, got, want)
		}
	}
}

func TestRoundTripPresence(t *testing.T) {
	for _, st := range roundTripStates {
		if got, want := decode[Presence](t, AppendPresence(nil, st)), presenceOf(st); !reflect.DeepEqual(got, want) {
			t.Errorf("AppendPresence(%v) decodes to %+v, want %+v", st, got, want)
		}
	}
}

func TestRoundTripUpdateFrame(t *testing.T) {
	now := time.Date(2026, 11, 29, 21, 26, 50, 143464000, time.FixedZone("CET", 3600))
	for _, st := range roundTripStates {
		got := decode[Frame](t, AppendUpdateFrame(nil, st, now))
		p := presenceOf(st)
		want := Frame{Type: TypePresenceUpdate, Data: &p, Timestamp: now.UTC()}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("AppendUpdateFrame(%v) decodes to %+v, want %+v", st, got, want)
		}
	}
}

func TestRoundTripIDsFrame(t *testing.T) {
	for _, tc := range []struct {
		typ string
		ids []int64
	}{
		{TypeSubscribed, []int64{456, 789}},
		{TypeUnsubscribed, []int64{1}},
		{TypeSubscribed, []int64{-5, 0, 9223372036854775807}},
	} {
		b := AppendIDsFrame(nil, tc.typ, tc.ids)
		if got, want := decode[Frame](t, b), (Frame{Type: tc.typ, UserIDs: tc.ids}); !reflect.DeepEqual(got, want) {
			t.Errorf("AppendIDsFrame(%q, %v) = %s decodes to %+v", tc.typ, tc.ids, b, got)
		}
	}
	// No ids is an empty array on the wire, not a missing field.
	if got := string(AppendIDsFrame(nil, TypeUnsubscribed, nil)); got != `{"type":"unsubscribed","user_ids":[]}` {
		t.Errorf("AppendIDsFrame with no ids = %s", got)
	}
}

func TestRoundTripErrorFrame(t *testing.T) {
	for detail, want := range map[string]string{
		"unknown frame type \"sub\"": `{"type":"error","detail":"unknown frame type \"sub\""}`,
		"":                           `{"type":"error","detail":""}`,
		"bad \xff":                   `{"type":"error","detail":"bad \ufffd"}`,
	} {
		b := AppendErrorFrame(nil, detail)
		if string(b) != want {
			t.Errorf("AppendErrorFrame(%q) = %s, want %s", detail, b, want)
		}
		if got := decode[Frame](t, b); got.Type != TypeError || got.Detail != jsonRoundTrip(t, detail) {
			t.Errorf("AppendErrorFrame(%q) decodes to %+v", detail, got)
		}
	}
}

func TestRoundTripDetail(t *testing.T) {
	for _, d := range []string{"User status not found", "", "a\"b\n"} {
		if got := decode[ErrorBody](t, AppendDetail(nil, d)); got.Detail != d {
			t.Errorf("AppendDetail(%q) decodes to %+v", d, got)
		}
	}
}

func TestAppendCleanup(t *testing.T) {
	tests := []struct {
		offline, cleared int64
		want             string
	}{
		{0, 0, `{"message":"Presence cleanup completed","users_marked_offline":0,"busy_status_cleared":0}`},
		{3, 12, `{"message":"Presence cleanup completed","users_marked_offline":3,"busy_status_cleared":12}`},
	}
	for _, tc := range tests {
		b := AppendCleanup(nil, tc.offline, tc.cleared)
		if string(b) != tc.want {
			t.Errorf("AppendCleanup(%d, %d) = %s, want %s", tc.offline, tc.cleared, b, tc.want)
		}
		want := Cleanup{Message: CleanupMessage, UsersMarkedOffline: tc.offline, BusyStatusCleared: tc.cleared}
		if got := decode[Cleanup](t, b); !reflect.DeepEqual(got, want) {
			t.Errorf("AppendCleanup decodes to %+v, want %+v", got, want)
		}
	}
}

func TestHeartbeatJSON(t *testing.T) {
	if got := decode[Message](t, []byte(HeartbeatJSON)); got.Message != HeartbeatMessage {
		t.Fatalf("HeartbeatJSON decodes to %+v", got)
	}
}

// The client frames as encoding/json writes them from Frame: only the
// fields of their type.
func TestClientFrames(t *testing.T) {
	for _, tc := range []struct {
		f    Frame
		want string
	}{
		{SubscribeFrame([]int64{456, 789}), `{"type":"subscribe","user_ids":[456,789]}`},
		{UnsubscribeFrame([]int64{789}), `{"type":"unsubscribe","user_ids":[789]}`},
		{HeartbeatFrame(), `{"type":"heartbeat"}`},
		{RefreshFrame("a.b.c"), `{"type":"refresh","token":"a.b.c"}`},
	} {
		b, err := json.Marshal(tc.f)
		if err != nil || string(b) != tc.want {
			t.Errorf("json.Marshal(%+v) = %s, %v; want %s", tc.f, b, err, tc.want)
		}
	}
}

func TestClusterStatusJSON(t *testing.T) {
	const body = `{"node":"a","standalone":false,"epoch":7,"members":[` +
		`{"name":"a","node_name":"host-a","status":"alive","draining":false,"owns_users":true,"self":true,` +
		`"http_addr":"10.0.0.1:8000","gossip_addr":"10.0.0.1:7946","remote_addr":"10.0.0.1:8090","actors_hosted":12},` +
		`{"name":"b","node_name":"host-b","status":"suspect","draining":true,"owns_users":false,"self":false,` +
		`"http_addr":"10.0.0.2:8000","gossip_addr":"10.0.0.2:7946","remote_addr":"10.0.0.2:8090","actors_hosted":null,"error":"unreachable: timeout"}]}`
	cs := decode[ClusterStatus](t, []byte(body))
	if cs.Node != "a" || cs.Epoch != 7 || len(cs.Members) != 2 || *cs.Members[0].ActorsHosted != 12 ||
		!cs.Members[0].Owner || cs.Members[1].ActorsHosted != nil || cs.Members[1].Error == "" || !cs.Members[1].Draining {
		t.Fatalf("decoded %+v", cs)
	}
	// Encoding gives the same document back (the server encodes these
	// types with encoding/json).
	b, err := json.Marshal(cs)
	if err != nil || string(b) != body {
		t.Fatalf("re-encoded\n %s\nwant\n %s (%v)", b, body, err)
	}
}

func TestAppendRefreshedFrame(t *testing.T) {
	for _, tc := range []struct {
		exp  time.Time
		want string
	}{
		{time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC), `{"type":"refreshed","expires_at":"2030-01-02T03:04:05Z"}`},
		// Another zone is written in UTC.
		{time.Date(2030, 1, 2, 5, 4, 5, 0, time.FixedZone("x", 2*3600)), `{"type":"refreshed","expires_at":"2030-01-02T03:04:05Z"}`},
	} {
		b := AppendRefreshedFrame(nil, tc.exp)
		if string(b) != tc.want {
			t.Errorf("AppendRefreshedFrame(%v) = %s, want %s", tc.exp, b, tc.want)
		}
		if got := decode[Frame](t, b); got.Type != TypeRefreshed || !got.ExpiresAt.Equal(tc.exp) {
			t.Errorf("AppendRefreshedFrame(%v) decodes to %+v", tc.exp, got)
		}
	}
}

func TestAppendDisconnect(t *testing.T) {
	for _, n := range []int64{0, 2} {
		b := AppendDisconnect(nil, n)
		want := `{"message":"User disconnected","sessions_closed":` + strconv.FormatInt(n, 10) + `}`
		if string(b) != want {
			t.Errorf("AppendDisconnect(%d) = %s, want %s", n, b, want)
		}
		if got := decode[Disconnect](t, b); got != (Disconnect{Message: DisconnectMessage, SessionsClosed: n}) {
			t.Errorf("AppendDisconnect(%d) decodes to %+v", n, got)
		}
	}
}
