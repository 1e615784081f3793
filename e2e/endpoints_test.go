package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/presence-cluster/presence/api"
	"github.com/presence-cluster/presence/node"
)

// TestEndpointShapes calls every endpoint once and checks each documented
// response shape: field names, JSON types, UTC times, nulls, Content-Type.
func TestEndpointShapes(t *testing.T) {
	n := startNode(t, node.Config{})
	alice := n.user(t, 123, "alice")
	jane := n.user(t, 456, "jane_smith")
	before := time.Now()

	// GET /users/me/status creates the record.
	st := alice.getStatus()
	if st.UserID != 123 || st.IsOnline || st.IsBusy || st.BusyUntil != nil || nthOf(st) != 1 {
		t.Fatalf("first status = %+v, want user 123 offline, not busy, busy_until null, version 1", st)
	}
	if st.LastSeen == nil || !st.LastSeen.Equal(*st.CreatedAt) || !st.UpdatedAt.Equal(*st.CreatedAt) {
		t.Fatalf("new record: last_seen %s created_at %s updated_at %s, want all equal",
			fmtTime(st.LastSeen), fmtTime(st.CreatedAt), fmtTime(st.UpdatedAt))
	}
	if st.CreatedAt.Before(before.Add(-time.Second)) || st.CreatedAt.After(time.Now().Add(time.Second)) {
		t.Fatalf("created_at %s is not now", fmtTime(st.CreatedAt))
	}

	// POST /users/me/heartbeat answers the seed's body.
	jane.heartbeat()

	// PUT /users/me/status answers the status record; busy_until sent with
	// an offset comes back in UTC with Z.
	r := alice.putStatusRaw(`{"is_online": true, "is_busy": true, "busy_until": "2999-01-15T13:00:00.5+02:00"}`)
	put := decodeStatus(t, expectOK(t, r))
	if !strings.Contains(string(r.Body), `"busy_until":"2999-01-15T11:00:00.5Z"`) {
		t.Errorf("busy_until not normalised to UTC: %s", r.Body)
	}
	if !put.IsOnline || !put.IsBusy || nthOf(put) != 2 {
		t.Errorf("after PUT: %+v, want online, busy, version 2", put)
	}

	// GET /users/{id}/presence.
	p := jane.presence(123)
	want := Presence{UserID: 123, Username: "alice", IsOnline: true, IsBusy: true, Version: put.Version}
	if p.UserID != want.UserID || p.Username != want.Username || p.IsOnline != want.IsOnline ||
		p.IsBusy != want.IsBusy || p.Version != want.Version || !sameTime(p.BusyUntil, time.Date(2999, 1, 15, 11, 0, 0, 5e8, time.UTC)) {
		t.Errorf("presence = %+v busy_until %s, want %+v busy_until 2999-01-15T11:00:00.5Z", p, fmtTime(p.BusyUntil), want)
	}
	// The presence record agrees with the status record.
	if !p.LastSeen.Equal(*put.LastSeen) {
		t.Errorf("presence last_seen %s, status last_seen %s", fmtTime(p.LastSeen), fmtTime(put.LastSeen))
	}

	// GET /users/presence: the seed's example asks for 3 ids and gets 2.
	list := alice.batch("123,456,789")
	if len(list) != 2 || list[0].UserID != 123 || list[1].UserID != 456 || list[1].Username != "jane_smith" {
		t.Fatalf("batch = %+v, want users 123 and 456 in that order", list)
	}
	if list[1].BusyUntil != nil || !list[1].IsOnline || list[1].IsBusy {
		t.Errorf("jane in batch = %+v, want online, not busy, busy_until null", list[1])
	}
	// A batch of unknown users is an empty array, not null.
	r = alice.batchRaw("?user_ids=777")
	expectOK(t, r)
	expectJSONEqual(t, r.Body, `[]`)

	// POST /admin/cleanup-presence.
	c := n.admin(t).cleanup()
	if c.UsersMarkedOffline != 0 || c.BusyStatusCleared != 0 {
		t.Errorf("cleanup with nothing overdue = %+v, want zero counts", c)
	}
}

// TestNoStatusFields: a PUT naming none of the three fields is 400.
func TestNoStatusFields(t *testing.T) {
	n := startNode(t, node.Config{})
	u := n.user(t, 1, "u")
	for _, body := range []string{`{}`, ` { } `, `{"unknown": true}`, `{"user_id": 5, "version": 9}`} {
		expectDetail(t, u.putStatusRaw(body), http.StatusBadRequest, "No status fields to update")
	}
	// Unknown fields beside a known one are ignored.
	if st := u.putStatus(`{"is_online": true, "color": "blue"}`); !st.IsOnline {
		t.Fatalf("PUT with an unknown field: %+v", st)
	}
}

// TestUnprocessableBodies: every malformed or ill-typed PUT body is 422
// with a detail (naming the field where one is at fault), and changes
// nothing.
func TestUnprocessableBodies(t *testing.T) {
	n := startNode(t, node.Config{})
	u := n.user(t, 1, "u")
	base := u.putStatus(`{"is_online": true}`)
	past := rfc3339(time.Now().Add(-time.Minute))

	cases := []struct {
		name, body, field string
	}{
		{"malformed", `{"is_online": tru`, ""},
		{"unterminated", `{`, ""},
		{"trailing garbage", `{"is_online": true} x`, ""},
		{"array", `[{"is_online": true}]`, ""},
		{"string", `"is_online"`, ""},
		{"null", `null`, ""},
		{"number", `42`, ""},
		{"empty", ``, ""},
		{"is_online string", `{"is_online": "yes"}`, "is_online"},
		{"is_online number", `{"is_online": 1}`, "is_online"},
		{"is_online null", `{"is_online": null}`, "is_online"},
		{"is_busy number", `{"is_busy": 1}`, "is_busy"},
		{"is_busy string", `{"is_busy": "true"}`, "is_busy"},
		{"is_busy null", `{"is_busy": null}`, "is_busy"},
		{"busy_until number", `{"busy_until": 5}`, "busy_until"},
		{"busy_until bool", `{"busy_until": true}`, "busy_until"},
		{"busy_until garbage", `{"busy_until": "tomorrow"}`, "busy_until"},
		{"busy_until past", `{"busy_until": "` + past + `"}`, "busy_until"},
		{"busy_until past with is_busy true", `{"is_busy": true, "busy_until": "` + past + `"}`, "busy_until"},
		{"busy_until seed example past", `{"busy_until": "2024-01-15T11:00:00Z"}`, "busy_until"},
		{"valid field then bad one", `{"is_online": false, "is_busy": 0}`, "is_busy"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := u.send(http.MethodPut, "/users/me/status", []byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			d := expectSomeDetail(t, r, http.StatusUnprocessableEntity)
			if tc.field != "" && !strings.Contains(d, tc.field) {
				t.Errorf("detail %q does not name %s", d, tc.field)
			}
		})
	}
	after := u.getStatus()
	if after.Version != base.Version || !after.IsOnline || after.IsBusy {
		t.Fatalf("refused PUTs changed the record: before %+v, after %+v", base, after)
	}
}

// TestBodyTooLarge: a body over the limit is 413 with a detail; one just
// under it is served.
func TestBodyTooLarge(t *testing.T) {
	n := startNode(t, node.Config{API: api.Config{BodyLimit: 4096}})
	u := n.user(t, 1, "u")
	pad := func(size int) string {
		prefix := `{"is_online": true, "pad": "`
		return prefix + strings.Repeat("x", size-len(prefix)-2) + `"}`
	}
	if st := u.putStatus(pad(4000)); !st.IsOnline {
		t.Fatalf("PUT under the limit: %+v", st)
	}
	r := u.putStatusRaw(pad(6000))
	expectSomeDetail(t, r, http.StatusRequestEntityTooLarge)

	// The default limit (16 KiB) applies when none is configured.
	d := startNode(t, node.Config{})
	expectSomeDetail(t, d.user(t, 1, "u").putStatusRaw(pad(20000)), http.StatusRequestEntityTooLarge)
}

// TestPresenceNotFoundAndBadPath: unknown users are 404, ids that are not
// positive integers 422.
func TestPresenceNotFoundAndBadPath(t *testing.T) {
	n := startNode(t, node.Config{})
	u := n.user(t, 1, "u")
	for _, id := range []string{"2", "12345", "9223372036854775807"} {
		expectDetail(t, u.presenceRaw(id), http.StatusNotFound, "User status not found")
	}
	for _, id := range []string{"abc", "0", "-3", "1.5", "+7", "1e3", "99999999999999999999", "me", "%20"} {
		t.Run(id, func(t *testing.T) {
			expectSomeDetail(t, u.on(t).presenceRaw(id), http.StatusUnprocessableEntity)
		})
	}
}

// TestBatchValidation: malformed user_ids are 422 (checked before the
// count), more than 50 distinct ids 400, 50 distinct plus duplicates fine.
func TestBatchValidation(t *testing.T) {
	n := startNode(t, node.Config{})
	u := n.user(t, 1, "u")
	u.heartbeat()

	fifty := idStrings(1, 50)
	fiftyOne := idStrings(1, 51)

	for _, q := range []struct{ name, query string }{
		{"missing", ""},
		{"other param only", "?ids=1,2"},
		{"empty", "?user_ids="},
		{"blank", "?user_ids=%20%20"},
		{"abc", "?user_ids=abc"},
		{"empty element", "?user_ids=1,,2"},
		{"trailing comma", "?user_ids=1,2,"},
		{"zero", "?user_ids=0"},
		{"negative", "?user_ids=-3"},
		{"out of range", "?user_ids=99999999999999999999"},
		{"fraction", "?user_ids=1.5"},
		{"plus sign", "?user_ids=%2B1"},
		{"bad among many", "?user_ids=" + strings.Join(append(idStrings(1, 60), "x"), ",")},
		{"bad after 51 distinct", "?user_ids=" + strings.Join(append(fiftyOne, "0"), ",")},
	} {
		t.Run("422 "+q.name, func(t *testing.T) {
			expectSomeDetail(t, u.on(t).batchRaw(q.query), http.StatusUnprocessableEntity)
		})
	}

	expectDetail(t, u.batchRaw("?user_ids="+strings.Join(fiftyOne, ",")), http.StatusBadRequest, "Too many user IDs requested")
	expectDetail(t, u.batchRaw("?user_ids="+strings.Join(idStrings(100, 200), ",")), http.StatusBadRequest, "Too many user IDs requested")

	// 50 distinct ids, each twice, with spaces: fine.
	dup := append(append([]string(nil), fifty...), fifty...)
	got := u.batch(strings.ReplaceAll(" "+strings.Join(dup, " , ")+" ", " ", "%20"))
	if len(got) != 1 || got[0].UserID != 1 {
		t.Fatalf("50 distinct ids with duplicates: %+v, want only user 1", got)
	}
}

// TestBatchOrderAndDuplicates: results keep the request's order, omit
// unknown ids and hold each user once.
func TestBatchOrderAndDuplicates(t *testing.T) {
	n := startNode(t, node.Config{})
	for _, id := range []int64{10, 20, 30, 40} {
		n.user(t, id, fmt.Sprint("user", id)).heartbeat()
	}
	u := n.user(t, 10, "user10")
	for _, tc := range []struct {
		query string
		want  []int64
	}{
		{"30,10,20", []int64{30, 10, 20}},
		{"40,99,30,30,10,40,5", []int64{40, 30, 10}},
		{"20", []int64{20}},
		{"99,98", nil},
		{"10,%2010%20,20,10", []int64{10, 20}},
	} {
		got := u.batch(tc.query)
		var ids []int64
		for _, p := range got {
			ids = append(ids, p.UserID)
			if p.Username != fmt.Sprint("user", p.UserID) || !p.IsOnline || !isNth(t, p.UserID, p.Version, 1) {
				t.Errorf("batch %s: record %+v", tc.query, p)
			}
		}
		if fmt.Sprint(ids) != fmt.Sprint(tc.want) {
			t.Errorf("batch %s = %v, want %v", tc.query, ids, tc.want)
		}
	}
}

// TestAdminCleanupAuthorization: cleanup needs is_admin or the admin role.
func TestAdminCleanupAuthorization(t *testing.T) {
	n := startNode(t, node.Config{})
	now := time.Now()
	claims := func(extra map[string]any) map[string]any {
		c := map[string]any{"sub": "42", "exp": now.Add(time.Hour).Unix(), "iat": now.Unix()}
		for k, v := range extra {
			c[k] = v
		}
		return c
	}
	for _, tc := range []struct {
		name   string
		claims map[string]any
		admin  bool
	}{
		{"plain user", claims(nil), false},
		{"is_admin false", claims(map[string]any{"is_admin": false}), false},
		{"is_admin string", claims(map[string]any{"is_admin": "true"}), false},
		{"other roles", claims(map[string]any{"roles": []string{"user", "moderator"}}), false},
		{"is_admin true", claims(map[string]any{"is_admin": true}), true},
		{"roles list", claims(map[string]any{"roles": []string{"user", "admin"}}), true},
		{"roles string", claims(map[string]any{"roles": "admin"}), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := n.withToken(t, signHS(t, "HS256", []byte(testSecret), tc.claims))
			r := c.cleanupRaw()
			if tc.admin {
				decodeCleanup(t, expectOK(t, r).Body)
			} else {
				expectDetail(t, r, http.StatusForbidden, "Admin privileges required")
			}
		})
	}
	// A non-admin's own endpoints still work.
	n.user(t, 42, "x").heartbeat()
}

// TestReadPathMetric: /metrics counts how the users of presence reads were
// answered: from an active actor's published snapshot, or by the actor
// itself (a user with no active actor here).
func TestReadPathMetric(t *testing.T) {
	n := startNode(t, node.Config{})
	alice := n.user(t, 1701, "alice")
	alice.heartbeat() // her actor is active and has published
	bob := n.user(t, 1702, "bob")

	if p := bob.presence(1701); !p.IsOnline {
		t.Fatalf("alice: %+v", p)
	}
	if r := bob.presenceRaw("1703"); r.Code != http.StatusNotFound { // no record, no actor yet
		t.Fatalf("GET /users/1703/presence: %d %s", r.Code, r.Body)
	}
	if got := bob.batch("1701,1703"); len(got) != 1 {
		t.Fatalf("batch: %+v", got)
	}
	// Alice's two reads come from her snapshot; 1703's first read is the
	// actor's (it had none). Its actor, with nothing stored, passivates
	// right after answering, so its second read may go either way.
	body := string(n.withToken(t, "").do(http.MethodGet, "/metrics", nil).Body)
	snap, byActor := metricValue(body, `presence_reads_total{path="snapshot"}`), metricValue(body, `presence_reads_total{path="actor"}`)
	if snap < 2 || byActor < 1 || snap+byActor != 4 {
		t.Errorf("reads by snapshot %v, by actor %v; want at least 2 and 1, 4 in all:\n%s", snap, byActor, grepLines(body, "presence_reads_total"))
	}
}

// metricValue returns the value of the sample line starting with series
// in a Prometheus text body, or -1.
func metricValue(body, series string) float64 {
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err == nil {
				return f
			}
		}
	}
	return -1
}

func grepLines(s, prefix string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
