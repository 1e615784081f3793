package testkit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// REST calls one node's HTTP API as users of a Tokens; it is safe for
// concurrent use. Calls return errors so traffic goroutines can use them;
// Must gives the same calls failing a test.
type REST struct {
	Base   string // http://host:port
	HC     *http.Client
	Tokens *Tokens
}

// NewREST returns a client of the node at addr (host:port).
func NewREST(addr string, tok *Tokens) *REST {
	return &REST{Base: "http://" + addr, HC: NewHTTPClient(15 * time.Second), Tokens: tok}
}

// WithTimeout returns a client of the same node whose calls give up after
// timeout.
func (r *REST) WithTimeout(timeout time.Duration) *REST {
	cp := *r
	hc := *r.HC
	hc.Timeout = timeout
	cp.HC = &hc
	return &cp
}

// Call sends one request as user uid (0: no token) and decodes a 2xx
// answer into out (when not nil); any other answer is an *HTTPError.
func (r *REST) Call(uid int64, method, path, body string, out any) error {
	return r.CallContext(context.Background(), uid, method, path, body, out)
}

// callAs is Call decoding the answer into a T, for the typed calls below.
func callAs[T any](r *REST, uid int64, method, path, body string) (T, error) {
	var v T
	err := r.Call(uid, method, path, body, &v)
	return v, err
}

// CallContext is Call bounded by ctx.
func (r *REST) CallContext(ctx context.Context, uid int64, method, path, body string, out any) error {
	var b []byte
	if body != "" {
		b = []byte(body)
	}
	tok := ""
	if uid != 0 {
		tok = r.Tokens.Of(uid)
	}
	res, err := Send(ctx, r.HC, method, r.Base+path, tok, b)
	if err != nil {
		return err
	}
	if res.Code/100 != 2 {
		return &HTTPError{Code: res.Code, Body: strings.TrimSpace(string(res.Body))}
	}
	if out != nil {
		if err := json.Unmarshal(res.Body, out); err != nil {
			return fmt.Errorf("%s %s: decode %s: %w", method, path, res.Body, err)
		}
	}
	return nil
}

// GetStatus is GET /users/me/status as uid.
func (r *REST) GetStatus(uid int64) (Status, error) {
	return callAs[Status](r, uid, http.MethodGet, "/users/me/status", "")
}

// PutStatus is PUT /users/me/status as uid with body.
func (r *REST) PutStatus(uid int64, body string) (Status, error) {
	return callAs[Status](r, uid, http.MethodPut, "/users/me/status", body)
}

// Heartbeat is POST /users/me/heartbeat as uid; the answer must be the
// seed's message with the heartbeat advice.
func (r *REST) Heartbeat(uid int64) error {
	_, err := r.HeartbeatAdvice(uid)
	return err
}

// HeartbeatAdvice is Heartbeat returning the answer.
func (r *REST) HeartbeatAdvice(uid int64) (Heartbeat, error) {
	var h Heartbeat
	if err := r.Call(uid, http.MethodPost, "/users/me/heartbeat", "", &h); err != nil {
		return h, err
	}
	if h.Message != "Heartbeat received" || h.HeartbeatIntervalSeconds <= 0 || h.OfflineAfterSeconds < 0 {
		return h, fmt.Errorf("heartbeat answer %+v", h)
	}
	return h, nil
}

// Presence is GET /users/{id}/presence as user asker.
func (r *REST) Presence(asker, id int64) (Presence, error) {
	return r.PresenceContext(context.Background(), asker, id)
}

// PresenceContext is Presence bounded by ctx.
func (r *REST) PresenceContext(ctx context.Context, asker, id int64) (Presence, error) {
	var p Presence
	return p, r.CallContext(ctx, asker, http.MethodGet, "/users/"+strconv.FormatInt(id, 10)+"/presence", "", &p)
}

// Batch is GET /users/presence?user_ids=ids as user asker.
func (r *REST) Batch(asker int64, ids []int64) ([]Presence, error) {
	return callAs[[]Presence](r, asker, http.MethodGet, "/users/presence?user_ids="+JoinIDs(ids, true), "")
}

// Cleanup is POST /admin/cleanup-presence as admin.
func (r *REST) Cleanup() (Cleanup, error) {
	return callAs[Cleanup](r, AdminID, http.MethodPost, "/admin/cleanup-presence", "")
}

// CleanupDryRun is POST /admin/cleanup-presence?dry_run=true as admin.
func (r *REST) CleanupDryRun() (Cleanup, error) {
	return callAs[Cleanup](r, AdminID, http.MethodPost, "/admin/cleanup-presence?dry_run=true", "")
}

// Disconnect is POST /admin/users/{id}/disconnect as user asker (AdminID
// for an admin).
func (r *REST) Disconnect(asker, id int64) (Disconnect, error) {
	return callAs[Disconnect](r, asker, http.MethodPost, "/admin/users/"+strconv.FormatInt(id, 10)+"/disconnect", "")
}

// Cluster is GET /admin/cluster as admin.
func (r *REST) Cluster() (ClusterStatus, error) {
	return callAs[ClusterStatus](r, AdminID, http.MethodGet, "/admin/cluster", "")
}

// Hosted returns actors_hosted per node name, as the node behind r
// reports them in GET /admin/cluster; a member that did not report is an
// error.
func (r *REST) Hosted() (map[string]int64, error) {
	st, err := r.Cluster()
	if err != nil {
		return nil, err
	}
	h, ok := Hosted(st)
	if !ok {
		return nil, fmt.Errorf("a member did not report actors_hosted: %+v", st.Members)
	}
	return h, nil
}

// InspectUser is GET /admin/users/{id} as admin.
func (r *REST) InspectUser(id int64) (UserInspection, error) {
	return callAs[UserInspection](r, AdminID, http.MethodGet, "/admin/users/"+strconv.FormatInt(id, 10), "")
}

// Stats is GET /admin/stats as admin.
func (r *REST) Stats() (ClusterStats, error) {
	return callAs[ClusterStats](r, AdminID, http.MethodGet, "/admin/stats", "")
}

// Metric reads one sample of GET /metrics: the line that starts with
// series (a name, with its labels if any) followed by a space.
func (r *REST) Metric(series string) (float64, error) {
	res, err := Send(context.Background(), r.HC, http.MethodGet, r.Base+"/metrics", "", nil)
	if err != nil {
		return 0, err
	}
	if res.Code != http.StatusOK {
		return 0, fmt.Errorf("GET /metrics: HTTP %d", res.Code)
	}
	for line := range strings.SplitSeq(string(res.Body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("no %s in /metrics", series)
}

// ErrWrongUser marks an answer about another user than the one asked for
// (the token's user for /users/me, the path's for presence).
var ErrWrongUser = errors.New("answer about the wrong user")

// PutOwn is PutStatus that also checks the answer is uid's own record.
func (r *REST) PutOwn(uid int64, body string) (Status, error) {
	st, err := r.PutStatus(uid, body)
	if err == nil && st.UserID != uid {
		return st, fmt.Errorf("%w: PUT %s as user %d on %s answered with the record of user %d: %s",
			ErrWrongUser, body, uid, r.Base, st.UserID, st)
	}
	return st, err
}

// GetOwn is GetStatus checked like PutOwn.
func (r *REST) GetOwn(uid int64) (Status, error) {
	st, err := r.GetStatus(uid)
	if err == nil && st.UserID != uid {
		return st, fmt.Errorf("%w: GET /users/me/status as user %d on %s answered with the record of user %d: %s",
			ErrWrongUser, uid, r.Base, st.UserID, st)
	}
	return st, err
}

// PresenceOf is PresenceContext that also checks the answer is about id.
func (r *REST) PresenceOf(ctx context.Context, asker, id int64) (Presence, error) {
	p, err := r.PresenceContext(ctx, asker, id)
	if err == nil && p.UserID != id {
		return p, fmt.Errorf("%w: GET /users/%d/presence on %s answered with user %d", ErrWrongUser, id, r.Base, p.UserID)
	}
	return p, err
}

// UserIDs returns the n user ids first, first+1, ...
func UserIDs(first int64, n int) []int64 {
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = first + int64(i)
	}
	return ids
}

// JoinIDs writes ids comma separated, query-escaped when escape is set.
func JoinIDs(ids []int64, escape bool) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.FormatInt(id, 10)
	}
	sep := ","
	if escape {
		sep = "%2C"
	}
	return strings.Join(parts, sep)
}

// MustREST is a REST whose calls fail the test on error.
type MustREST struct {
	t testing.TB
	r *REST
}

// Must returns r's calls failing t.
func (r *REST) Must(t testing.TB) MustREST { return MustREST{t: t, r: r} }

// GetStatus is REST.GetStatus failing the test.
func (m MustREST) GetStatus(uid int64) Status {
	m.t.Helper()
	s, err := m.r.GetStatus(uid)
	if err != nil {
		m.t.Fatalf("GET /users/me/status as %d on %s: %v", uid, m.r.Base, err)
	}
	return s
}

// PutStatus is REST.PutStatus failing the test.
func (m MustREST) PutStatus(uid int64, body string) Status {
	m.t.Helper()
	s, err := m.r.PutStatus(uid, body)
	if err != nil {
		m.t.Fatalf("PUT /users/me/status %s as %d on %s: %v", body, uid, m.r.Base, err)
	}
	return s
}

// PutOwn is REST.PutOwn failing the test.
func (m MustREST) PutOwn(uid int64, body string) Status {
	m.t.Helper()
	s, err := m.r.PutOwn(uid, body)
	if err != nil {
		m.t.Fatalf("PUT %s as %d on %s: %v", body, uid, m.r.Base, err)
	}
	return s
}

// Heartbeat is REST.Heartbeat failing the test.
func (m MustREST) Heartbeat(uid int64) {
	m.t.Helper()
	if err := m.r.Heartbeat(uid); err != nil {
		m.t.Fatalf("POST /users/me/heartbeat as %d on %s: %v", uid, m.r.Base, err)
	}
}

// Presence is REST.Presence failing the test.
func (m MustREST) Presence(asker, id int64) Presence {
	m.t.Helper()
	p, err := m.r.Presence(asker, id)
	if err != nil {
		m.t.Fatalf("GET /users/%d/presence on %s: %v", id, m.r.Base, err)
	}
	return p
}

// Batch is REST.Batch failing the test.
func (m MustREST) Batch(asker int64, ids []int64) []Presence {
	m.t.Helper()
	ps, err := m.r.Batch(asker, ids)
	if err != nil {
		m.t.Fatalf("GET /users/presence?user_ids=%v on %s: %v", ids, m.r.Base, err)
	}
	return ps
}

// Cleanup is REST.Cleanup failing the test.
func (m MustREST) Cleanup() Cleanup {
	m.t.Helper()
	c, err := m.r.Cleanup()
	if err != nil {
		m.t.Fatalf("POST /admin/cleanup-presence on %s: %v", m.r.Base, err)
	}
	return c
}

// CleanupDryRun is REST.CleanupDryRun failing the test.
func (m MustREST) CleanupDryRun() Cleanup {
	m.t.Helper()
	c, err := m.r.CleanupDryRun()
	if err != nil {
		m.t.Fatalf("POST /admin/cleanup-presence?dry_run=true on %s: %v", m.r.Base, err)
	}
	return c
}

// Cluster is REST.Cluster failing the test.
func (m MustREST) Cluster() ClusterStatus {
	m.t.Helper()
	c, err := m.r.Cluster()
	if err != nil {
		m.t.Fatalf("GET /admin/cluster on %s: %v", m.r.Base, err)
	}
	return c
}
