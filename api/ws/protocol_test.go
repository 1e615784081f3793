package ws

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/presence-cluster/presence/wire"
)

func TestParseClientFrame(t *testing.T) {
	const badIDs = "user_ids must be an array of positive integers"
	tests := []struct {
		in     string
		typ    string
		ids    []int64
		token  string
		detail string
	}{
		{in: `{"type":"heartbeat"}`, typ: "heartbeat"},
		{in: `{"type":"refresh","token":"a.b.c"}`, typ: "refresh", token: "a.b.c"},
		{in: `{"type":"refresh"}`, detail: "token is required: a JWT string"},
		{in: `{"type":"refresh","token":""}`, detail: "token is required: a JWT string"},
		{in: `{"type":"refresh","token":42}`, detail: "token is required: a JWT string"},
		{in: `{"type":"refresh","token":null}`, detail: "token is required: a JWT string"},
		{in: `  {"type":"heartbeat"}  `, typ: "heartbeat"},
		{in: `{"type":"subscribe","user_ids":[1,2,2,3]}`, typ: "subscribe", ids: []int64{1, 2, 3}},
		{in: `{"type":"unsubscribe","user_ids":[7]}`, typ: "unsubscribe", ids: []int64{7}},
		{in: `{"type":"subscribe","user_ids":[]}`, typ: "subscribe", ids: []int64{}},
		{in: `{"type":"subscribe"}`, detail: "user_ids is required: an array of positive integers"},
		{in: `{"type":"subscribe","user_ids":null}`, detail: badIDs},
		{in: `{"type":"subscribe","user_ids":"1,2"}`, detail: badIDs},
		{in: `{"type":"subscribe","user_ids":["1"]}`, detail: badIDs},
		{in: `{"type":"subscribe","user_ids":[-1]}`, detail: badIDs},
		{in: `{"type":"subscribe","user_ids":[0]}`, detail: badIDs},
		{in: `{"type":"subscribe","user_ids":[1.5]}`, detail: badIDs},
		{in: `{"type":"subscribe","user_ids":[1e3]}`, detail: badIDs},
		{in: `{"type":"subscribe","user_ids":[99999999999999999999]}`, detail: badIDs},
		{in: `{"type":""}`, detail: "frame has no type"},
		{in: `{}`, detail: "frame has no type"},
		{in: `{"type":"sub"}`, detail: `unknown frame type "sub"; want subscribe, unsubscribe, heartbeat or refresh`},
		{in: `[{"type":"heartbeat"}]`, detail: "frame is not a JSON object"},
		{in: `null`, detail: "frame is not a JSON object"},
		{in: `{"type":1}`, detail: "frame is not a JSON object"},
		{in: `{"type":"heartbeat",}`, detail: "frame is not a JSON object"},
		{in: ``, detail: "frame is not a JSON object"},
	}
	for _, tc := range tests {
		typ, ids, token, err := parseClientFrame([]byte(tc.in))
		switch {
		case tc.detail != "":
			if err == nil || err.Error() != tc.detail {
				t.Errorf("%s: error %v, want %q", tc.in, err, tc.detail)
			}
		case err != nil:
			t.Errorf("%s: %v", tc.in, err)
		case typ != tc.typ || !slices.Equal(ids, tc.ids) || token != tc.token:
			t.Errorf("%s = %q %v %q, want %q %v %q", tc.in, typ, ids, token, tc.typ, tc.ids, tc.token)
		}
	}
}

func TestParseQueryIDs(t *testing.T) {
	tests := []struct {
		q      string
		limit  int
		ids    []int64
		detail string
	}{
		{q: "1,2,3", limit: 10, ids: []int64{1, 2, 3}},
		{q: " 1 , 2 ,1", limit: 10, ids: []int64{1, 2}},
		{q: "1,2,3", limit: 3, ids: []int64{1, 2, 3}},
		{q: "1,2,3,4", limit: 3, detail: "user_ids exceeds the subscription limit of 3"},
		{q: "1,,2", limit: 10, detail: "user_ids must be a comma-separated list of positive integers"},
		{q: "1,+2", limit: 10, detail: "user_ids must be a comma-separated list of positive integers"},
		{q: "0", limit: 10, detail: "user_ids must be a comma-separated list of positive integers"},
		{q: "a", limit: 10, detail: "user_ids must be a comma-separated list of positive integers"},
	}
	for _, tc := range tests {
		ids, err := parseQueryIDs(tc.q, tc.limit)
		switch {
		case tc.detail != "":
			if err == nil || err.Error() != tc.detail {
				t.Errorf("%q: error %v, want %q", tc.q, err, tc.detail)
			}
		case err != nil || !slices.Equal(ids, tc.ids):
			t.Errorf("%q = %v, %v; want %v", tc.q, ids, err, tc.ids)
		}
	}
}

func TestFrames(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC)
	tests := []struct {
		name string
		got  []byte
		want string
	}{
		{"subscribed", wire.AppendIDsFrame(nil, "subscribed", []int64{1, 22}), `{"type":"subscribed","user_ids":[1,22]}`},
		{"unsubscribed empty", wire.AppendIDsFrame(nil, "unsubscribed", nil), `{"type":"unsubscribed","user_ids":[]}`},
		{"error", wire.AppendErrorFrame(nil, `bad "x"`), `{"type":"error","detail":"bad \"x\""}`},
		{"update", wire.AppendUpdateFrame(nil, state(7, 9), now),
			`{"type":"presence_update","data":{"user_id":7,"username":"x","is_online":true,"is_busy":false,"busy_until":null,"last_seen":null,"version":9},"timestamp":"2026-01-02T03:04:05.0000006Z"}`},
	}
	for _, tc := range tests {
		if string(tc.got) != tc.want {
			t.Errorf("%s = %s, want %s", tc.name, tc.got, tc.want)
		}
		if !json.Valid(tc.got) {
			t.Errorf("%s is not valid JSON", tc.name)
		}
	}
	if !strings.HasSuffix(string(wire.AppendUpdateFrame(nil, state(1, 1), time.Now())), `Z"}`) {
		t.Error("timestamp not in UTC")
	}
}

// BenchmarkAppendUpdateFrame is the push encoder: into a reused buffer, and
// as the hub calls it per change (a fresh buffer shared by every queue).
func BenchmarkAppendUpdateFrame(b *testing.B) {
	st := state(1_000_042, 1234)
	now := time.Now()
	b.Run("reused", func(b *testing.B) {
		buf := wire.AppendUpdateFrame(nil, st, now)
		b.SetBytes(int64(len(buf)))
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			buf = wire.AppendUpdateFrame(buf[:0], st, now)
		}
	})
	b.Run("hub", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			_ = wire.AppendUpdateFrame(make([]byte, 0, 256), st, now)
		}
	})
}
