// Package e2e drives whole presence nodes over real HTTP on loopback: a node
// started in-process with node.Start, or the presenced binary itself.
// Nothing of the project is mocked; only time may be faked, through the
// Clock hook node.Config documents for tests.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/presence-cluster/presence/internal/testkit"
	"github.com/presence-cluster/presence/node"
)

// testSecret is the HS256 secret of every node the tests start.
const testSecret = "e2e-test-secret-0123456789abcdef"

// adminID is the user id of the admin token; tests never use it as a
// subject of /users/me calls.
const adminID = 9_000_000

// ---------------------------------------------------------------- nodes

// testNode is a standalone node started in this process.
type testNode struct{ *testkit.InProc }

// startNode starts a standalone node (see testkit.StartStandalone) with
// testSecret; it stops when the test ends (or earlier with Stop).
func startNode(t *testing.T, cfg node.Config) *testNode {
	t.Helper()
	return &testNode{testkit.StartStandalone(t, cfg, testSecret)}
}

// user returns a client authenticated as userID with that display name.
func (n *testNode) user(t *testing.T, userID int64, username string) *client {
	return newClient(t, n.Base, n.HTTP, mint(t, userID, username, false))
}

// admin returns a client with an admin token.
func (n *testNode) admin(t *testing.T) *client {
	return newClient(t, n.Base, n.HTTP, mint(t, adminID, "root", true))
}

// withToken returns a client that sends token as is ("" sends no header).
func (n *testNode) withToken(t *testing.T, token string) *client {
	return newClient(t, n.Base, n.HTTP, token)
}

// ---------------------------------------------------------------- tokens

// mint issues an HS256 token for the node secret, valid for an hour.
func mint(t *testing.T, userID int64, username string, admin bool) string {
	t.Helper()
	return testkit.Mint(t, []byte(testSecret), userID, username, admin)
}

// ---------------------------------------------------------------- client

type client struct {
	t     *testing.T
	base  string
	http  *http.Client
	token string
}

func newClient(t *testing.T, base string, hc *http.Client, token string) *client {
	return &client{t: t, base: base, http: hc, token: token}
}

type response = testkit.Response

// send performs one request; it is safe from any goroutine.
func (c *client) send(method, path string, body []byte) (*response, error) {
	return testkit.Send(context.Background(), c.http, method, c.base+path, c.token, body)
}

func (c *client) do(method, path string, body []byte) *response {
	c.t.Helper()
	r, err := c.send(method, path, body)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

func (c *client) getStatusRaw() *response { return c.do(http.MethodGet, "/users/me/status", nil) }
func (c *client) putStatusRaw(body string) *response {
	return c.do(http.MethodPut, "/users/me/status", []byte(body))
}
func (c *client) heartbeatRaw() *response { return c.do(http.MethodPost, "/users/me/heartbeat", nil) }
func (c *client) presenceRaw(id string) *response {
	return c.do(http.MethodGet, "/users/"+id+"/presence", nil)
}
func (c *client) batchRaw(rawQuery string) *response {
	return c.do(http.MethodGet, "/users/presence"+rawQuery, nil)
}
func (c *client) cleanupRaw() *response { return c.do(http.MethodPost, "/admin/cleanup-presence", nil) }

// getStatus is GET /users/me/status, which must answer 200 with a status record.
func (c *client) getStatus() Status {
	c.t.Helper()
	return decodeStatus(c.t, expectOK(c.t, c.getStatusRaw()))
}

// putStatus is PUT /users/me/status with body, which must answer 200.
func (c *client) putStatus(body string) Status {
	c.t.Helper()
	return decodeStatus(c.t, expectOK(c.t, c.putStatusRaw(body)))
}

// heartbeat is POST /users/me/heartbeat, which must answer the seed's
// message with the heartbeat advice.
func (c *client) heartbeat() Heartbeat {
	c.t.Helper()
	r := expectOK(c.t, c.heartbeatRaw())
	checkShape(c.t, r.Body, heartbeatShape)
	var h Heartbeat
	if err := json.Unmarshal(r.Body, &h); err != nil || h.Message != "Heartbeat received" {
		c.t.Fatalf("heartbeat answer %s: %v", r.Body, err)
	}
	return h
}

// presence is GET /users/{id}/presence, which must answer 200.
func (c *client) presence(id int64) Presence {
	c.t.Helper()
	return decodePresence(c.t, expectOK(c.t, c.presenceRaw(strconv.FormatInt(id, 10))))
}

// batch is GET /users/presence?user_ids=ids, which must answer 200.
func (c *client) batch(ids string) []Presence {
	c.t.Helper()
	r := expectOK(c.t, c.batchRaw("?user_ids="+ids))
	var raws []json.RawMessage
	if err := json.Unmarshal(r.Body, &raws); err != nil || raws == nil {
		c.t.Fatalf("batch body is not a JSON array: %v: %s", err, r.Body)
	}
	out := make([]Presence, len(raws))
	for i, raw := range raws {
		out[i] = decodePresenceBody(c.t, raw)
	}
	return out
}

// idStrings returns the user ids from..to (inclusive) as strings, to build
// user_ids lists (malformed ones included).
func idStrings(from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, strconv.Itoa(i))
	}
	return out
}

// cleanup is POST /admin/cleanup-presence, which must answer 200 with the
// seed's shape.
func (c *client) cleanup() Cleanup {
	c.t.Helper()
	r := expectOK(c.t, c.cleanupRaw())
	return decodeCleanup(c.t, r.Body)
}

// ---------------------------------------------------------------- bodies

// The API's JSON bodies.
type (
	Status    = testkit.Status
	Presence  = testkit.Presence
	Cleanup   = testkit.Cleanup
	Heartbeat = testkit.Heartbeat
)

type kind int

const (
	kInt kind = iota + 1
	kBool
	kString
	kTime       // RFC 3339 UTC string ending in Z
	kTimeOrNull // kTime or null
	kArray      // a JSON array (its elements checked separately)
)

var statusShape = map[string]kind{
	"user_id": kInt, "is_online": kBool, "is_busy": kBool, "busy_until": kTimeOrNull,
	"last_seen": kTimeOrNull, "created_at": kTime, "updated_at": kTime, "version": kInt,
}

var presenceShape = map[string]kind{
	"user_id": kInt, "username": kString, "is_online": kBool, "is_busy": kBool,
	"busy_until": kTimeOrNull, "last_seen": kTimeOrNull, "version": kInt,
}

var cleanupShape = map[string]kind{
	"message": kString, "users_marked_offline": kInt, "busy_status_cleared": kInt,
	"dry_run": kBool, "users": kArray, "truncated": kBool,
}

var cleanupUserShape = map[string]kind{
	"user_id": kInt, "mark_offline": kBool, "clear_busy": kBool, "last_seen": kTimeOrNull, "busy_until": kTimeOrNull,
}

var heartbeatShape = map[string]kind{
	"message": kString, "heartbeat_interval_seconds": kInt, "offline_after_seconds": kInt,
}

// checkShape asserts that body is a JSON object with exactly the fields of
// shape, each of its JSON type.
func checkShape(t *testing.T, body []byte, shape map[string]kind) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil || obj == nil {
		t.Fatalf("body is not a JSON object: %v: %s", err, body)
	}
	for name := range obj {
		if _, ok := shape[name]; !ok {
			t.Errorf("unexpected field %q in %s", name, body)
		}
	}
	for name, k := range shape {
		v, ok := obj[name]
		if !ok {
			t.Errorf("missing field %q in %s", name, body)
			continue
		}
		if err := checkKind(v, k); err != nil {
			t.Errorf("field %q: %v (body %s)", name, err, body)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

func checkKind(v any, k kind) error {
	switch k {
	case kInt:
		n, ok := v.(json.Number)
		if !ok {
			return fmt.Errorf("want an integer, got %T %v", v, v)
		}
		if _, err := strconv.ParseInt(n.String(), 10, 64); err != nil {
			return fmt.Errorf("want an integer, got %s", n)
		}
	case kBool:
		if _, ok := v.(bool); !ok {
			return fmt.Errorf("want a boolean, got %T %v", v, v)
		}
	case kString:
		if _, ok := v.(string); !ok {
			return fmt.Errorf("want a string, got %T %v", v, v)
		}
	case kArray:
		if _, ok := v.([]any); !ok {
			return fmt.Errorf("want an array, got %T %v", v, v)
		}
	case kTimeOrNull:
		if v == nil {
			return nil
		}
		return checkKind(v, kTime)
	case kTime:
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("want an RFC 3339 string, got %T %v", v, v)
		}
		return checkUTC(s)
	}
	return nil
}

// checkUTC asserts s is an RFC 3339 date-time in UTC written with Z.
func checkUTC(s string) error {
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("not RFC 3339: %q: %v", s, err)
	}
	if !strings.HasSuffix(s, "Z") {
		return fmt.Errorf("not UTC with Z: %q", s)
	}
	if _, off := tm.Zone(); off != 0 {
		return fmt.Errorf("not UTC: %q", s)
	}
	return nil
}

func decodeStatus(t *testing.T, r *response) Status {
	t.Helper()
	checkShape(t, r.Body, statusShape)
	var s Status
	if err := json.Unmarshal(r.Body, &s); err != nil {
		t.Fatalf("decode status: %v: %s", err, r.Body)
	}
	return s
}

func decodePresence(t *testing.T, r *response) Presence {
	t.Helper()
	return decodePresenceBody(t, r.Body)
}

func decodePresenceBody(t *testing.T, body []byte) Presence {
	t.Helper()
	checkShape(t, body, presenceShape)
	var p Presence
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("decode presence: %v: %s", err, body)
	}
	return p
}

func decodeCleanup(t *testing.T, body []byte) Cleanup {
	t.Helper()
	checkShape(t, body, cleanupShape)
	var raw struct{ Users []json.RawMessage }
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatalf("decode cleanup users: %v: %s", err, body)
	}
	for _, u := range raw.Users {
		checkShape(t, u, cleanupUserShape)
	}
	var c Cleanup
	if err := json.Unmarshal(body, &c); err != nil {
		t.Fatalf("decode cleanup: %v: %s", err, body)
	}
	if c.Message != "Presence cleanup completed" {
		t.Fatalf("cleanup message = %q", c.Message)
	}
	return c
}

// expectJSON asserts the status code and an application/json Content-Type.
func expectJSON(t *testing.T, r *response, code int) *response {
	t.Helper()
	if r.Code != code {
		t.Fatalf("status %d, want %d; body %s", r.Code, code, r.Body)
	}
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		t.Fatalf("Content-Type %q, want application/json (status %d, body %s)", ct, r.Code, r.Body)
	}
	return r
}

func expectOK(t *testing.T, r *response) *response {
	t.Helper()
	return expectJSON(t, r, http.StatusOK)
}

// expectDetail asserts an error answer {"detail": detail} and nothing else.
func expectDetail(t *testing.T, r *response, code int, detail string) {
	t.Helper()
	expectJSON(t, r, code)
	expectJSONEqual(t, r.Body, `{"detail":`+strconv.Quote(detail)+`}`)
}

// expectSomeDetail asserts an error answer whose only field, detail, is a
// non-empty string, and returns it.
func expectSomeDetail(t *testing.T, r *response, code int) string {
	t.Helper()
	expectJSON(t, r, code)
	var body map[string]any
	if err := json.Unmarshal(r.Body, &body); err != nil {
		t.Fatalf("error body is not a JSON object: %s", r.Body)
	}
	d, ok := body["detail"].(string)
	if !ok || d == "" || len(body) != 1 {
		t.Fatalf(`want {"detail": "<non-empty>"}, got %s`, r.Body)
	}
	return d
}

// expectJSONEqual compares two JSON documents, ignoring field order.
func expectJSONEqual(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("body is not JSON: %v: %s", err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad expectation %s: %v", want, err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if !bytes.Equal(gb, wb) {
		t.Fatalf("body %s, want %s", got, want)
	}
}

// ---------------------------------------------------------------- helpers

// eventually polls cond every 10ms until it holds, failing the test after
// timeout.
func eventually(t *testing.T, timeout time.Duration, cond func() bool, msgAndArgs ...any) {
	t.Helper()
	msg := "condition"
	if len(msgAndArgs) > 0 {
		msg = fmt.Sprintf(msgAndArgs[0].(string), msgAndArgs[1:]...)
	}
	testkit.Until(t, timeout, cond, "%s", msg)
}

// rfc3339 formats tm as the API expects busy_until.
func rfc3339(tm time.Time) string { return testkit.RFC3339(tm) }

// micro truncates tm to the microsecond the API keeps.
func micro(tm time.Time) time.Time { return tm.Truncate(time.Microsecond).UTC() }

func sameTime(a *time.Time, b time.Time) bool { return a != nil && a.Equal(b) }

func fmtTime(p *time.Time) string {
	if p == nil {
		return "null"
	}
	return p.Format(time.RFC3339Nano)
}

// dialTCP opens a plain TCP connection to addr, closed when the test ends,
// for requests written byte by byte.
func dialTCP(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// readResponse reads and closes res.
func readResponse(t *testing.T, res *http.Response) *response {
	t.Helper()
	r, err := testkit.ReadResponse(res)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return r
}

// on returns a copy of c that reports to t (a subtest's t).
func (c *client) on(t *testing.T) *client {
	cp := *c
	cp.t = t
	return &cp
}
