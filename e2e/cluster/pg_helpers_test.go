package clustere2e

// Helpers of the cluster-on-PostgreSQL tests (pg_*_test.go): presenced
// processes sharing one PostgreSQL schema, a TCP proxy that cuts the
// database off, and clients that fail over between nodes. Every test makes
// its own schema, so these tests and the store package's tests can run at
// once on the same server; the shared server itself is never stopped.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgBase returns the server the tests use (PRESENCE_TEST_POSTGRES), or
// skips the test.
func pgBase(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs cmd/presenced processes on PostgreSQL")
	}
	u := os.Getenv("PRESENCE_TEST_POSTGRES")
	if u == "" {
		t.Skip(`PRESENCE_TEST_POSTGRES is not set: cluster-on-PostgreSQL tests skipped (eval "$(bash .ci/postgres.sh)" starts a local server and sets it)`)
	}
	pu, err := url.Parse(u)
	if err != nil || (pu.Scheme != "postgres" && pu.Scheme != "postgresql") || pu.Hostname() == "" {
		t.Skip("PRESENCE_TEST_POSTGRES must be a postgres:// URL with a host for the cluster-on-PostgreSQL tests")
	}
	return u
}

// pgSetParam returns the URL with one query parameter set.
func pgSetParam(t testing.TB, conn, key, value string) string {
	t.Helper()
	u, err := url.Parse(conn)
	if err != nil {
		t.Fatalf("parse %q: %v", conn, err)
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}

// pgSetHost points the URL at hostport (a proxy).
func pgSetHost(t testing.TB, conn, hostport string) string {
	t.Helper()
	u, err := url.Parse(conn)
	if err != nil {
		t.Fatalf("parse %q: %v", conn, err)
	}
	u.Host = hostport
	return u.String()
}

// pgServerAddr is the host:port of the URL.
func pgServerAddr(t testing.TB, conn string) string {
	t.Helper()
	u, err := url.Parse(conn)
	if err != nil {
		t.Fatalf("parse %q: %v", conn, err)
	}
	port := u.Port()
	if port == "" {
		port = "5432"
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// pgExec runs statements on conn.
func pgExec(conn string, sql ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, conn)
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer c.Close(context.Background())
	for _, s := range sql {
		if _, err := c.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

// pgSchema creates a uniquely named schema, dropped when the test ends
// (after the processes, which are started later, are killed), and returns
// the URL whose sessions use it.
func pgSchema(t *testing.T, base string) (conn, name string) {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name = "presence_e2e_" + hex.EncodeToString(b[:])
	ident := pgx.Identifier{name}.Sanitize()
	if err := pgExec(base, "CREATE SCHEMA "+ident); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := pgExec(base, "DROP SCHEMA "+ident+" CASCADE"); err != nil {
			t.Errorf("drop schema: %v", err)
		}
	})
	return pgSetParam(t, base, "search_path", name), name
}

// pgRow is a presence_users row.
type pgRow struct {
	IsOnline, IsBusy bool
	BusyUntil        int64 // Unix µs, 0: none
	LastSeen         int64
	UpdatedAt        int64
	Version          int64
}

// pgRows reads the rows of ids straight from the database.
func pgRows(t testing.TB, conn string, ids []int64) map[int64]pgRow {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, conn)
	if err != nil {
		t.Fatalf("connect to PostgreSQL: %v", err)
	}
	defer c.Close(context.Background())
	rows, err := c.Query(ctx, `SELECT user_id, is_online, is_busy, busy_until, last_seen, updated_at, version
FROM presence_users WHERE user_id = ANY($1)`, ids)
	if err != nil {
		t.Fatalf("read presence_users: %v", err)
	}
	out := map[int64]pgRow{}
	for rows.Next() {
		var id int64
		var r pgRow
		if err := rows.Scan(&id, &r.IsOnline, &r.IsBusy, &r.BusyUntil, &r.LastSeen, &r.UpdatedAt, &r.Version); err != nil {
			t.Fatalf("scan presence_users: %v", err)
		}
		out[id] = r
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read presence_users: %v", err)
	}
	return out
}

// pgSameStatus compares what a client sees of two states.
func pgSameStatus(a, b Status) bool {
	return samePresence(
		Presence{UserID: a.UserID, IsOnline: a.IsOnline, IsBusy: a.IsBusy, BusyUntil: a.BusyUntil, Version: a.Version},
		Presence{UserID: b.UserID, IsOnline: b.IsOnline, IsBusy: b.IsBusy, BusyUntil: b.BusyUntil, Version: b.Version})
}

// pgRowMatches compares a database row with an answered state.
func pgRowMatches(r pgRow, s Status) bool {
	bu := int64(0)
	if s.BusyUntil != nil {
		bu = s.BusyUntil.UnixMicro()
	}
	return r.IsOnline == s.IsOnline && r.IsBusy == s.IsBusy && r.BusyUntil == bu && uint64(r.Version) == s.Version
}

// pgREST is a REST client of the node at addr whose calls give up after
// timeout.
func pgREST(addr string, tok *tokens, timeout time.Duration) *rest {
	r := newREST(addr, tok)
	r.hc.Timeout = timeout
	return r
}

// pgDetail checks a non-200 body is {"detail": "<non-empty>"}.
func pgDetail(body string) error {
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		return fmt.Errorf("body %q is not JSON: %v", body, err)
	}
	d, ok := m["detail"].(string)
	if !ok || d == "" {
		return fmt.Errorf("body %q has no detail string", body)
	}
	return nil
}

// ---------------------------------------------------------------- cluster

type pgPorts struct{ http, gossip, remote int }

// pgCluster is n presenced processes on fixed ports (a restarted node gets
// its ports back), with an "up" flag per node that clients route by.
type pgCluster struct {
	t     *testing.T
	bin   string
	tok   *tokens
	env   map[string]string
	ports []pgPorts

	mu    sync.Mutex
	procs []*proc
	up    []bool
	rests []*rest // clients of each node for the traffic loops
}

// pgNewCluster reserves ports for n nodes; env is added to every node's.
func pgNewCluster(t *testing.T, bin string, tok *tokens, n int, env map[string]string) *pgCluster {
	c := &pgCluster{t: t, bin: bin, tok: tok, env: env, procs: make([]*proc, n), up: make([]bool, n), rests: make([]*rest, n)}
	used := map[int]bool{}
	distinct := func() int {
		for {
			if p := freePort(t); !used[p] {
				used[p] = true
				return p
			}
		}
	}
	for range n {
		c.ports = append(c.ports, pgPorts{distinct(), distinct(), distinct()})
	}
	return c
}

func (c *pgCluster) name(i int) string { return fmt.Sprintf("p%d", i+1) }

func (c *pgCluster) httpAddr(i int) string { return "127.0.0.1:" + strconv.Itoa(c.ports[i].http) }

// start starts node i (again) and marks it up.
func (c *pgCluster) start(i int) *proc {
	c.t.Helper()
	return c.launch(i, true)
}

// launch starts node i (again); up says whether clients may use it yet.
func (c *pgCluster) launch(i int, up bool) *proc {
	c.t.Helper()
	var seeds []string
	for j, p := range c.ports {
		if j != i {
			seeds = append(seeds, "127.0.0.1:"+strconv.Itoa(p.gossip))
		}
	}
	env := map[string]string{
		"PRESENCE_STANDALONE":      "false",
		"PRESENCE_NODE_NAME":       c.name(i),
		"PRESENCE_HTTP_ADDR":       c.httpAddr(i),
		"PRESENCE_GOSSIP_ADDR":     "127.0.0.1:" + strconv.Itoa(c.ports[i].gossip),
		"PRESENCE_REMOTE_ADDR":     "127.0.0.1:" + strconv.Itoa(c.ports[i].remote),
		"PRESENCE_SEEDS":           strings.Join(seeds, ","),
		"PRESENCE_JWT_SECRET":      testSecret,
		"PRESENCE_REJOIN_INTERVAL": "2s",
	}
	for k, v := range c.env {
		env[k] = v
	}
	p := startProc(c.t, c.bin, c.name(i), env, c.tok)
	c.mu.Lock()
	c.procs[i] = p
	if c.rests[i] == nil {
		c.rests[i] = pgREST(c.httpAddr(i), c.tok, 7*time.Second)
	}
	c.up[i] = up
	c.mu.Unlock()
	return p
}

func (c *pgCluster) proc(i int) *proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.procs[i]
}

func (c *pgCluster) setUp(i int, up bool) {
	c.mu.Lock()
	c.up[i] = up
	c.mu.Unlock()
}

// upIndexes lists the nodes marked up, starting from the k-th (mod n), so
// callers spread their traffic.
func (c *pgCluster) upIndexes(k int) []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.up)
	var out []int
	for j := range n {
		i := (k + j) % n
		if c.up[i] {
			out = append(out, i)
		}
	}
	return out
}

// kill9 SIGKILLs node i and waits for it to exit.
func (c *pgCluster) kill9(i int) {
	c.t.Helper()
	c.setUp(i, false)
	p := c.proc(i)
	if err := p.cmd.Process.Kill(); err != nil {
		c.t.Fatalf("kill %s: %v", p.name, err)
	}
	<-p.exited
}

// term SIGTERMs node i and waits (at most limit) for it to exit; it
// returns how long the graceful stop took and the exit code. Clients keep
// sending to the node while it drains (they retry elsewhere on errors,
// as behind a load balancer that has not noticed yet); it is marked down
// once it has exited.
func (c *pgCluster) term(i int, limit time.Duration) (time.Duration, int) {
	c.t.Helper()
	defer c.setUp(i, false)
	p := c.proc(i)
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		c.t.Fatalf("SIGTERM %s: %v", p.name, err)
	}
	select {
	case <-p.exited:
	case <-time.After(limit):
		c.t.Fatalf("%s did not exit within %v of SIGTERM:\n    %s", p.name, limit, p.tail(40))
	}
	return time.Since(start), p.cmd.ProcessState.ExitCode()
}

// checkAlive fails the test if a node marked up has exited.
func (c *pgCluster) checkAlive() {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, p := range c.procs {
		if p == nil || !c.up[i] {
			continue
		}
		select {
		case <-p.exited:
			c.t.Fatalf("%s exited (code %d):\n    %s", p.name, p.cmd.ProcessState.ExitCode(), p.tail(60))
		default:
		}
	}
}

// waitFormed waits until every node marked up answers /readyz 200 and
// sees exactly the up nodes as alive owners.
func (c *pgCluster) waitFormed(timeout time.Duration, what string) time.Duration {
	c.t.Helper()
	return eventually(c.t, timeout, what, func() error {
		c.checkAlive()
		ups := c.upIndexes(0)
		var views []string
		bad := false
		for _, i := range ups {
			p := c.proc(i)
			if err := p.api.call(0, "GET", "/readyz", "", nil); err != nil {
				views = append(views, fmt.Sprintf("%s /readyz: %v", p.name, err))
				bad = true
				continue
			}
			st, err := p.api.cluster()
			if err != nil {
				views = append(views, fmt.Sprintf("%s: %v", p.name, err))
				bad = true
				continue
			}
			views = append(views, fmt.Sprintf("%s sees %s", p.name, st))
			if len(st.Members) != len(ups) || st.alive() != len(ups) {
				bad = true
			}
		}
		if bad {
			return fmt.Errorf("\n  %s", strings.Join(views, "\n  "))
		}
		return nil
	})
}

// hosted returns actors_hosted per node name, as node i reports them.
func (c *pgCluster) hosted(i int) (map[string]int64, error) {
	st, err := c.proc(i).api.cluster()
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, m := range st.Members {
		if m.ActorsHosted == nil {
			return nil, fmt.Errorf("member %s did not report: %s", m.NodeName, m.Error)
		}
		out[m.NodeName] = *m.ActorsHosted
	}
	return out, nil
}

// checkLogs fails the test if a node's output shows a panic or a data race.
func (c *pgCluster) checkLogs() {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.procs {
		if p == nil {
			continue
		}
		b, _ := os.ReadFile(p.log)
		for _, bad := range []string{"panic:", "DATA RACE", "fatal error:"} {
			if strings.Contains(string(b), bad) {
				c.t.Errorf("%s output contains %q:\n    %s", p.name, bad, p.tail(60))
			}
		}
	}
}

// ---------------------------------------------------------------- proxy

type pgProxyMode int32

const (
	pgPass      pgProxyMode = iota // forward
	pgReset                        // connections reset, new ones refused (server down)
	pgBlackhole                    // nothing passes, nothing is refused (network cut)
)

// pgProxy forwards TCP connections to the PostgreSQL server. cut makes the
// database unreachable for the processes behind it without touching the
// shared server.
type pgProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	mode  pgProxyMode
	gate  chan struct{} // closed while data may flow
	conns map[net.Conn]struct{}
	held  map[net.Conn]struct{} // accepted while blackholed: no upstream

	accepted, refused atomic.Int64
	wg                sync.WaitGroup
	closed            chan struct{}
}

func pgStartProxy(t *testing.T, target string) *pgProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &pgProxy{ln: ln, target: target, gate: make(chan struct{}), conns: map[net.Conn]struct{}{},
		held: map[net.Conn]struct{}{}, closed: make(chan struct{})}
	close(p.gate)
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *pgProxy) addr() string { return p.ln.Addr().String() }

func (p *pgProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.accepted.Add(1)
		p.mu.Lock()
		mode := p.mode
		p.mu.Unlock()
		switch mode {
		case pgReset:
			p.refused.Add(1)
			pgRST(c)
		case pgBlackhole:
			// Held open and read, never answered, until restore resets it.
			p.mu.Lock()
			p.held[c] = struct{}{}
			p.mu.Unlock()
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				_, _ = io.Copy(io.Discard, c)
				p.mu.Lock()
				delete(p.held, c)
				p.mu.Unlock()
			}()
		default:
			up, err := net.DialTimeout("tcp", p.target, 2*time.Second)
			if err != nil {
				pgRST(c)
				continue
			}
			p.track(c)
			p.track(up)
			p.wg.Add(2)
			go p.pipe(up, c)
			go p.pipe(c, up)
		}
	}
}

// pipe copies src to dst, holding data while the gate is shut.
func (p *pgProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	defer func() {
		_ = dst.Close()
		_ = src.Close()
		p.untrack(dst)
		p.untrack(src)
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			gate := p.gate
			p.mu.Unlock()
			select {
			case <-gate:
			case <-p.closed:
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *pgProxy) track(c net.Conn) {
	p.mu.Lock()
	p.conns[c] = struct{}{}
	p.mu.Unlock()
}

func (p *pgProxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// pgRST closes c with a reset, as a dead server's host does.
func pgRST(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// cut makes the database unreachable: pgReset drops every connection and
// refuses new ones; pgBlackhole lets nothing through either way.
func (p *pgProxy) cut(mode pgProxyMode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = mode
	switch mode {
	case pgReset:
		for c := range p.conns {
			pgRST(c)
		}
	case pgBlackhole:
		p.gate = make(chan struct{})
	}
}

// restore lets connections through again; connections accepted while
// blackholed are reset (they never reached the server), and data held on
// the others flows on, as after a healed network.
func (p *pgProxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mode == pgBlackhole {
		close(p.gate)
	}
	p.mode = pgPass
	for c := range p.held {
		pgRST(c)
	}
}

func (p *pgProxy) close() {
	select {
	case <-p.closed:
		return
	default:
	}
	close(p.closed)
	_ = p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		pgRST(c)
	}
	for c := range p.held {
		pgRST(c)
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// ---------------------------------------------------------------- errors

// pgCode is the HTTP status of a call's error: 200 for nil, the code of an
// HTTP answer, or 0 for a transport error (no answer).
func pgCode(err error) (int, string) {
	if err == nil {
		return 200, ""
	}
	var he *httpError
	if errors.As(err, &he) {
		return he.code, he.body
	}
	return 0, err.Error()
}

// pgMetric reads one sample of the node's /metrics: the line that starts
// with series (a name, with its labels if any) followed by a space.
func pgMetric(r *rest, series string) (float64, error) {
	res, err := r.hc.Get(r.base + "/metrics")
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return 0, err
	}
	if res.StatusCode != 200 {
		return 0, fmt.Errorf("GET /metrics: HTTP %d", res.StatusCode)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("no %s in /metrics", series)
}

// errPgIdentity marks an answer about another user than the caller.
var errPgIdentity = errors.New("identity mix-up")

// pgPut is PUT /users/me/status as u that also checks the answer is u's
// own record.
func pgPut(r *rest, u int64, body string) (Status, error) {
	st, err := r.putStatus(u, body)
	if err == nil && st.UserID != u {
		return st, fmt.Errorf("%w: PUT %s as user %d on %s answered with the record of user %d: %s",
			errPgIdentity, body, u, r.base, st.UserID, st)
	}
	return st, err
}

// pgGet is GET /users/me/status as u, checked like pgPut.
func pgGet(r *rest, u int64) (Status, error) {
	st, err := r.getStatus(u)
	if err == nil && st.UserID != u {
		return st, fmt.Errorf("%w: GET /users/me/status as user %d on %s answered with the record of user %d: %s",
			errPgIdentity, u, r.base, st.UserID, st)
	}
	return st, err
}

// pgMustPut is pgPut failing the test.
func pgMustPut(t testing.TB, r *rest, u int64, body string) Status {
	t.Helper()
	st, err := pgPut(r, u, body)
	if err != nil {
		t.Fatalf("PUT %s as %d on %s: %v", body, u, r.base, err)
	}
	return st
}
