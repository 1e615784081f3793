package clustere2e

// Helpers of the cluster-on-PostgreSQL tests (pg_*_test.go): presenced
// processes sharing one PostgreSQL schema, a TCP proxy that cuts the
// database off, and clients that fail over between nodes. Every test makes
// its own schema, so these tests and the store package's tests can run at
// once on the same server; the shared server itself is never stopped.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/presence-cluster/presence/internal/testkit"
)

// pgBase returns the server the tests use (PRESENCE_TEST_POSTGRES), or
// skips the test.
func pgBase(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs cmd/presenced processes on PostgreSQL")
	}
	return testkit.PostgresURL(t)
}

// createUsers creates each user through one node of c (a heartbeat) and
// sets body as its status through the next node, so that the writes
// spread over the three nodes; it returns the answered statuses.
func createUsers(t *testing.T, c *testkit.ProcCluster, users []int64, body string) map[int64]Status {
	t.Helper()
	last := make(map[int64]Status, len(users))
	for i, u := range users {
		c.Proc(i % 3).API.Must(t).Heartbeat(u)
		last[u] = c.Proc((i+1)%3).API.Must(t).PutOwn(u, body)
	}
	return last
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

// pgRowMatches compares a database row with an answered state.
func pgRowMatches(r pgRow, s Status) bool {
	bu := int64(0)
	if s.BusyUntil != nil {
		bu = s.BusyUntil.UnixMicro()
	}
	return r.IsOnline == s.IsOnline && r.IsBusy == s.IsBusy && r.BusyUntil == bu && uint64(r.Version) == s.Version
}

// pgCluster is three presenced processes sharing a fresh PostgreSQL
// schema, formed into one cluster.
type pgCluster struct {
	c      *testkit.ProcCluster
	tok    *testkit.Tokens
	conn   string   // the schema's database URL
	schema string   // the schema's name
	proxy  *pgProxy // between the nodes and PostgreSQL; nil unless asked for
}

// startPGCluster starts the three processes with env (on top of the
// schema's PRESENCE_STORE and no write rate limit), through a TCP proxy to
// the database when viaProxy, and waits until they form a cluster.
func startPGCluster(t *testing.T, env map[string]string, viaProxy bool) *pgCluster {
	t.Helper()
	base := pgBase(t)
	pc := &pgCluster{tok: newTokens()}
	pc.conn, pc.schema = testkit.PgSchema(t, base)
	all := map[string]string{"PRESENCE_STORE": pc.conn, "PRESENCE_WRITE_RATE": "-1"}
	what := "three processes on PostgreSQL form a cluster"
	if viaProxy {
		pc.proxy = pgStartProxy(t, testkit.URLHostPort(t, base))
		all["PRESENCE_STORE"] = testkit.SetURLHost(t, pc.conn, pc.proxy.addr())
		what = "three processes on PostgreSQL (through the proxy) form a cluster"
	}
	for k, v := range env {
		all[k] = v
	}
	pc.c = testkit.NewProcCluster(t, testkit.BuildPresenced(t), pc.tok, 3, all)
	pc.c.StartAll()
	formed := pc.c.WaitFormed(45*time.Second, what)
	t.Logf("schema %s: cluster of 3 formed %v after the starts", pc.schema, formed.Round(time.Millisecond))
	return pc
}
