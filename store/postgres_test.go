package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"

	"github.com/presence-cluster/presence/internal/testkit"
	"github.com/presence-cluster/presence/messages"
	"github.com/presence-cluster/presence/store"
	"github.com/presence-cluster/presence/store/storetest"
)

// adminExec runs statements on the test server outside any test schema.
func adminExec(tb testing.TB, conn string, sql ...string) {
	tb.Helper()
	if err := testkit.PgExec(conn, sql...); err != nil {
		tb.Fatal(err)
	}
}

// freshSchema creates a uniquely named schema, dropped when the test ends,
// and returns a connection string whose sessions use it (search_path), so
// tests running at once, or left over from a killed run, never meet.
func freshSchema(tb testing.TB) string {
	tb.Helper()
	conn, _ := testkit.PgSchema(tb, testkit.PostgresConn(tb))
	return conn
}

func openPostgres(tb testing.TB, conn string, opts store.PostgresOptions) *store.Postgres {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := store.OpenPostgres(ctx, conn, opts)
	if err != nil {
		tb.Fatalf("OpenPostgres: %v", err)
	}
	tb.Cleanup(func() { _ = p.Close() })
	return p
}

// queryInt runs a query returning one integer in the schema of conn.
func queryInt(tb testing.TB, conn, sql string, args ...any) int64 {
	tb.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, conn)
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	defer c.Close(ctx)
	var n int64
	if err := c.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
		tb.Fatalf("%s: %v", sql, err)
	}
	return n
}

func TestPostgresConformance(t *testing.T) {
	testkit.PostgresConn(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		p, err := store.OpenPostgres(context.Background(), freshSchema(t), store.PostgresOptions{MaxConns: 8})
		if err != nil {
			t.Fatalf("OpenPostgres: %v", err)
		}
		return p
	})
}

// embeddedMigrations counts the migration files the binary embeds.
func embeddedMigrations(t *testing.T) int64 {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("migrations", "*.sql"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no migrations found: %v", err)
	}
	return int64(len(files))
}

func TestPostgresMigrationsRunTwice(t *testing.T) {
	conn := freshSchema(t)
	want := embeddedMigrations(t)

	first := openPostgres(t, conn, store.PostgresOptions{})
	st := rec(1, 1, true)
	if err := first.Save(context.Background(), st, 0); err != nil {
		t.Fatalf("Save: %v", err)
	}
	if err := first.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	second := openPostgres(t, conn, store.PostgresOptions{})
	got, err := second.Load(context.Background(), 1)
	if err != nil || !proto.Equal(got, st) {
		t.Fatalf("after reopen Load(1) = %v, %v; want %v", got, err, st)
	}
	if n := queryInt(t, conn, "SELECT count(*) FROM presence_schema_migrations"); n != want {
		t.Fatalf("%d migration rows after two opens, want %d", n, want)
	}
	if n, last := queryInt(t, conn, "SELECT max(version) FROM presence_schema_migrations"), latestMigration(t); n != last {
		t.Fatalf("latest migration %d, want %d", n, last)
	}
}

// latestMigration is the highest NNNN of the embedded migration files
// (numbers may have gaps while branches add migrations in parallel).
func latestMigration(t *testing.T) int64 {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("migrations", "*.sql"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no migrations found: %v", err)
	}
	var last int64
	for _, f := range files {
		num, _, _ := strings.Cut(filepath.Base(f), "_")
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil {
			t.Fatalf("migration %s: %v", f, err)
		}
		last = max(last, n)
	}
	return last
}

func TestPostgresMigrationsConcurrent(t *testing.T) {
	conn := freshSchema(t)
	want := embeddedMigrations(t)

	const nodes = 4
	var wg sync.WaitGroup
	stores := make([]*store.Postgres, nodes)
	errs := make([]error, nodes)
	start := make(chan struct{})
	for i := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			stores[i], errs[i] = store.OpenPostgres(context.Background(), conn, store.PostgresOptions{MaxConns: 2})
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("node %d: OpenPostgres: %v", i, err)
			continue
		}
		t.Cleanup(func() { _ = stores[i].Close() })
	}
	if t.Failed() {
		return
	}
	if n := queryInt(t, conn, "SELECT count(*) FROM presence_schema_migrations"); n != want {
		t.Fatalf("%d migration rows after %d concurrent opens, want %d", n, nodes, want)
	}
	// Every node sees the one table.
	if err := stores[0].Save(context.Background(), rec(5, 1, true), 0); err != nil {
		t.Fatalf("Save: %v", err)
	}
	for i, s := range stores {
		if _, err := s.Load(context.Background(), 5); err != nil {
			t.Errorf("node %d: Load: %v", i, err)
		}
	}
}

// TestPostgresConcurrentPools runs compare-and-set loops from 8 "nodes",
// each with its own pool, over shared and private users while last_seen
// touches come in batches from every node: no update is lost, no CAS lets
// two writers win, last_seen never goes back, and no statement deadlocks.
func TestPostgresConcurrentPools(t *testing.T) {
	conn := freshSchema(t)
	const (
		nodes      = 8
		shared     = 3  // users 1..3, written by every node
		increments = 40 // successful increments per node per user
		t0         = int64(1_750_000_000_000_000)
	)
	ctx := context.Background()
	stores := make([]*store.Postgres, nodes)
	for i := range stores {
		stores[i] = openPostgres(t, conn, store.PostgresOptions{MaxConns: 4})
	}
	users := []int64{}
	for id := int64(1); id <= shared; id++ {
		users = append(users, id)
	}
	for i := range nodes {
		users = append(users, int64(100+i)) // private to node i
	}
	for _, id := range users {
		st := rec(id, 1, true)
		st.LastSeen = t0
		if err := stores[0].Save(ctx, st, 0); err != nil {
			t.Fatalf("Save: %v", err)
		}
	}

	var conflicts atomic.Int64
	var wg sync.WaitGroup
	casLoop := func(s *store.Postgres, id int64, n int) {
		defer wg.Done()
		c := 0
		for done := 0; done < n; {
			cur, err := s.Load(ctx, id)
			if err != nil {
				t.Errorf("Load(%d): %v", id, err)
				return
			}
			next := proto.Clone(cur).(*messages.UserState)
			next.Version = cur.GetVersion() + 1
			next.BusyUntil = cur.GetBusyUntil() + 1
			next.LastSeen = t0 // older than every touch
			err = s.Save(ctx, next, cur.GetVersion())
			switch {
			case err == nil:
				done++
			case errors.Is(err, store.ErrVersionConflict):
				c++
			default:
				t.Errorf("Save(%d): %v", id, err)
				return
			}
		}
		conflicts.Add(int64(c))
	}
	for i, s := range stores {
		for _, id := range users[:shared] {
			wg.Add(1)
			go casLoop(s, id, increments)
		}
		wg.Add(1)
		go casLoop(s, int64(100+i), increments)
		// Every node also flushes touches of all users, in its own order
		// (the store must sort them), with rising values.
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := int64(1); round <= 30; round++ {
				batch := make([]store.Touch, 0, len(users))
				for _, id := range users {
					batch = append(batch, store.Touch{UserID: id, LastSeen: t0 + 1000*round + int64(i)})
				}
				mrand.Shuffle(len(batch), func(a, b int) { batch[a], batch[b] = batch[b], batch[a] })
				if err := s.TouchLastSeen(ctx, batch); err != nil {
					t.Errorf("TouchLastSeen: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	total := conflicts.Load()
	wantLastSeen := t0 + 1000*30 + nodes - 1
	for _, id := range users {
		got, err := stores[0].Load(ctx, id)
		if err != nil {
			t.Fatalf("Load(%d): %v", id, err)
		}
		writers := 1
		if id <= shared {
			writers = nodes
		}
		want := int64(writers * increments)
		if got.GetBusyUntil() != want || got.GetVersion() != uint64(1+want) {
			t.Errorf("user %d: counter %d version %d, want %d and %d", id, got.GetBusyUntil(), got.GetVersion(), want, 1+want)
		}
		if got.GetLastSeen() != wantLastSeen {
			t.Errorf("user %d: last_seen %d, want %d (the largest touch)", id, got.GetLastSeen(), wantLastSeen)
		}
	}
	t.Logf("%d nodes: %d conflicts on %d shared users", nodes, total, shared)
}

func TestPostgresTouchBatch10k(t *testing.T) {
	conn := freshSchema(t)
	p := openPostgres(t, conn, store.PostgresOptions{})
	ctx := context.Background()
	const (
		n  = 10_000
		t0 = int64(1_750_000_000_000_000)
	)
	// Even ids 2..10000 exist with last_seen t0; among them, multiples of 10
	// already have a later last_seen than the touch brings.
	adminExec(t, conn, fmt.Sprintf(`INSERT INTO presence_users (user_id, username, is_online, last_seen, created_at, updated_at, version)
SELECT id, 'u' || id, true, CASE WHEN id %% 10 = 0 THEN %d ELSE %d END, %d, %d, 3 FROM generate_series(2, %d, 2) AS id`,
		t0+1_000_000, t0, t0, t0, n))

	touches := make([]store.Touch, 0, n+2)
	for id := int64(1); id <= n; id++ {
		touches = append(touches, store.Touch{UserID: id, LastSeen: t0 + 500_000 + id})
	}
	// Duplicates: the larger value wins wherever it is in the batch.
	touches = append(touches, store.Touch{UserID: 2, LastSeen: t0 + 600_000}, store.Touch{UserID: 4, LastSeen: t0 + 1})
	mrand.Shuffle(len(touches), func(a, b int) { touches[a], touches[b] = touches[b], touches[a] })
	before := make([]store.Touch, len(touches))
	copy(before, touches)

	start := time.Now()
	if err := p.TouchLastSeen(ctx, touches); err != nil {
		t.Fatalf("TouchLastSeen(%d touches): %v", len(touches), err)
	}
	elapsed := time.Since(start)
	for i := range touches {
		if touches[i] != before[i] {
			t.Fatal("TouchLastSeen modified the caller's slice")
		}
	}

	raised := queryInt(t, conn, "SELECT count(*) FROM presence_users WHERE last_seen = $1::bigint + 500000 + user_id", t0)
	if raised != n/2-n/10-1 { // even ids, not multiples of 10, not user 2
		t.Errorf("%d users raised to their touch, want %d", raised, n/2-n/10-1)
	}
	if kept := queryInt(t, conn, "SELECT count(*) FROM presence_users WHERE last_seen = $1::bigint", t0+1_000_000); kept != n/10 {
		t.Errorf("%d users kept their later last_seen, want %d", kept, n/10)
	}
	if rows := queryInt(t, conn, "SELECT count(*) FROM presence_users"); rows != n/2 {
		t.Errorf("%d rows after the touch, want %d: missing users must be skipped", rows, n/2)
	}
	if v := queryInt(t, conn, "SELECT count(*) FROM presence_users WHERE version <> 3 OR updated_at <> $1::bigint", t0); v != 0 {
		t.Errorf("%d rows had version or updated_at changed by a touch", v)
	}
	got, err := p.Load(ctx, 2)
	if err != nil || got.GetLastSeen() != t0+600_000 {
		t.Errorf("user 2 = %v, %v; want the larger duplicate %d", got, err, t0+600_000)
	}
	if _, err := p.Load(ctx, 3); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Load(3) = %v, want ErrNotFound: a touch must not create a user", err)
	}
	t.Logf("one TouchLastSeen of %d touches (%d users exist) took %v", len(touches), n/2, elapsed)
}

func TestPostgresScanLivePages(t *testing.T) {
	conn := freshSchema(t)
	// One connection: ScanLive must have released it before calling fn, or
	// the Load below would wait forever.
	p := openPostgres(t, conn, store.PostgresOptions{MaxConns: 1})
	ctx := context.Background()
	const n = 5000 // several pages of live users (7 in 15 are live)
	adminExec(t, conn, fmt.Sprintf(`INSERT INTO presence_users (user_id, username, is_online, is_busy, version)
SELECT id, 'u' || id, id %% 3 = 0, id %% 5 = 0, 1 FROM generate_series(1, %d) AS id`, n))
	for _, id := range []int64{math.MinInt64, math.MaxInt64} {
		if err := p.Save(ctx, rec(id, 1, true), 0); err != nil {
			t.Fatalf("Save(%d): %v", id, err)
		}
	}
	want := map[int64]bool{math.MinInt64: true, math.MaxInt64: true}
	for id := int64(1); id <= n; id++ {
		if id%3 == 0 || id%5 == 0 {
			want[id] = true
		}
	}
	got := map[int64]bool{}
	last := int64(math.MinInt64)
	first := true
	err := p.ScanLive(ctx, func(st *messages.UserState) error {
		id := st.GetUserId()
		if !first && id <= last {
			t.Fatalf("ScanLive out of order: %d after %d", id, last)
		}
		first, last = false, id
		got[id] = true
		if id%500 == 0 {
			if _, err := p.Load(ctx, id); err != nil {
				return fmt.Errorf("Load inside fn: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("ScanLive: %v", err)
	}
	if len(got) != len(want) {
		t.Errorf("ScanLive returned %d users, want %d", len(got), len(want))
	}
	for id := range want {
		if !got[id] {
			t.Errorf("ScanLive missed user %d", id)
		}
	}

	// Stopping in the second page.
	calls := 0
	errStop := errors.New("stop")
	err = p.ScanLive(ctx, func(*messages.UserState) error {
		if calls++; calls == 1500 {
			return errStop
		}
		return nil
	})
	if !errors.Is(err, errStop) || calls != 1500 {
		t.Fatalf("ScanLive = %v after %d calls, want errStop after 1500", err, calls)
	}

	// Canceled mid-scan.
	cctx, cancel := context.WithCancel(ctx)
	calls = 0
	err = p.ScanLive(cctx, func(*messages.UserState) error {
		if calls++; calls == 10 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || calls != 10 {
		t.Fatalf("ScanLive = %v after %d calls, want context.Canceled after 10", err, calls)
	}
	if err := p.Ping(ctx); err != nil {
		t.Fatalf("Ping after the scans: %v", err)
	}
}

func TestPostgresSaveConflictMessage(t *testing.T) {
	p := openPostgres(t, freshSchema(t), store.PostgresOptions{})
	ctx := context.Background()
	if err := p.Save(ctx, rec(1, 4, true), 0); err != nil {
		t.Fatalf("Save: %v", err)
	}
	err := p.Save(ctx, rec(1, 9, true), 3)
	if !errors.Is(err, store.ErrVersionConflict) || !strings.Contains(err.Error(), "stored version 4") {
		t.Fatalf("Save with stale prevVersion = %v, want ErrVersionConflict naming stored version 4", err)
	}
	// A version above MaxInt64 is stored bit for bit and compares equal.
	big := rec(1, math.MaxUint64-1, true)
	if err := p.Save(ctx, big, 4); err != nil {
		t.Fatalf("Save(version %d): %v", big.GetVersion(), err)
	}
	if err := p.Save(ctx, rec(1, math.MaxUint64, true), math.MaxUint64-1); err != nil {
		t.Fatalf("Save(version MaxUint64): %v", err)
	}
	got, err := p.Load(ctx, 1)
	if err != nil || got.GetVersion() != math.MaxUint64 {
		t.Fatalf("Load = %v, %v; want version MaxUint64", got, err)
	}
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// These need no server: they run without PRESENCE_TEST_POSTGRES too.
func TestPostgresUnreachable(t *testing.T) {
	conn := "postgres://presence:presence@" + closedPort(t) + "/presence?sslmode=disable"

	t.Run("NoWait", func(t *testing.T) {
		start := time.Now()
		p, err := store.OpenPostgres(context.Background(), conn, store.PostgresOptions{})
		if err == nil {
			_ = p.Close()
			t.Fatal("OpenPostgres of a closed port succeeded")
		}
		if !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("OpenPostgres = %v, want an error wrapping ErrUnavailable", err)
		}
		if strings.Contains(err.Error(), "presence:presence") {
			t.Errorf("error shows the password: %v", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("OpenPostgres with StartupWait 0 took %v", d)
		}
		t.Logf("error: %v", err)
	})

	t.Run("StartupWait", func(t *testing.T) {
		var logs bytes.Buffer
		logger := slog.New(slog.NewTextHandler(&logs, nil))
		start := time.Now()
		_, err := store.OpenPostgres(context.Background(), conn,
			store.PostgresOptions{StartupWait: 800 * time.Millisecond, Logger: logger})
		d := time.Since(start)
		if !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("OpenPostgres = %v, want ErrUnavailable", err)
		}
		if d < 800*time.Millisecond || d > 5*time.Second {
			t.Errorf("OpenPostgres gave up after %v, want about 800ms", d)
		}
		if n := strings.Count(logs.String(), "retrying"); n < 2 {
			t.Errorf("%d retries logged, want several:\n%s", n, logs.String())
		}
	})

	t.Run("ContextEndsWait", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := store.OpenPostgres(ctx, conn, store.PostgresOptions{StartupWait: time.Minute})
		if err == nil || time.Since(start) > 5*time.Second {
			t.Fatalf("OpenPostgres = %v after %v, want an error soon after the context ends", err, time.Since(start))
		}
	})

	t.Run("BadURL", func(t *testing.T) {
		_, err := store.OpenPostgres(context.Background(), "postgres://x:y@[::1/db", store.PostgresOptions{StartupWait: time.Minute})
		if err == nil || errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("OpenPostgres of a bad URL = %v, want a configuration error", err)
		}
	})
}

func TestPostgresBadPasswordFailsFast(t *testing.T) {
	conn := testkit.PostgresConn(t)
	u, err := url.Parse(conn)
	if err != nil || u.User == nil {
		t.Skip("needs PRESENCE_TEST_POSTGRES as a postgres:// URL with a user")
	}
	u.User = url.UserPassword(u.User.Username(), "wrong-password")
	start := time.Now()
	_, err = store.OpenPostgres(context.Background(), u.String(), store.PostgresOptions{StartupWait: 30 * time.Second})
	if err == nil {
		t.Skip("the server accepted a wrong password (trust authentication)")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("a rejected password was retried for %v; waiting cannot fix it", d)
	}
	if strings.Contains(err.Error(), "wrong-password") {
		t.Errorf("error shows the password: %v", err)
	}
	t.Logf("error: %v", err)
}

// proxy forwards TCP connections to the server and can be stopped (the
// server "goes away": listener closed, every connection cut) and started
// again on the same address.
type proxy struct {
	t      *testing.T
	target string
	addr   string
	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]struct{}
}

func newProxy(t *testing.T, target string) *proxy {
	p := &proxy{t: t, target: target, addr: closedPort(t), conns: map[net.Conn]struct{}{}}
	t.Cleanup(p.stop)
	return p
}

func (p *proxy) start() { p.listen(false) }

// startBlackhole accepts connections and never answers.
func (p *proxy) startBlackhole() { p.listen(true) }

func (p *proxy) listen(blackhole bool) {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatalf("proxy listen %s: %v", p.addr, err)
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if blackhole {
				if !p.track(c) {
					_ = c.Close()
				}
				continue
			}
			go p.forward(c)
		}
	}()
}

func (p *proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *proxy) forward(c net.Conn) {
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = c.Close()
		return
	}
	if !p.track(c) || !p.track(s) {
		_ = c.Close()
		_ = s.Close()
		return
	}
	go func() { _, _ = io.Copy(s, c); _ = s.Close() }()
	_, _ = io.Copy(c, s)
	_ = c.Close()
}

func (p *proxy) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		_ = c.Close()
		delete(p.conns, c)
	}
}

func TestPostgresServerGoesAway(t *testing.T) {
	conn := freshSchema(t)
	px := newProxy(t, testkit.URLHostPort(t, conn))
	px.start()
	p := openPostgres(t, testkit.SetURLHost(t, conn, px.addr), store.PostgresOptions{ConnectTimeout: time.Second})
	ctx := context.Background()
	if err := p.Save(ctx, rec(1, 1, true), 0); err != nil {
		t.Fatalf("Save: %v", err)
	}

	px.stop()
	opCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	checks := map[string]func() error{
		"Load":          func() error { _, err := p.Load(opCtx, 1); return err },
		"Save":          func() error { return p.Save(opCtx, rec(1, 2, true), 1) },
		"TouchLastSeen": func() error { return p.TouchLastSeen(opCtx, []store.Touch{{UserID: 1, LastSeen: 5}}) },
		"ScanLive":      func() error { return p.ScanLive(opCtx, func(*messages.UserState) error { return nil }) },
		"Ping":          func() error { return p.Ping(opCtx) },
	}
	for _, name := range []string{"Load", "Save", "TouchLastSeen", "ScanLive", "Ping"} {
		start := time.Now()
		err := checks[name]()
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s with the server gone = %v, want ErrUnavailable", name, err)
		} else {
			t.Logf("%s (%v): %v", name, time.Since(start).Round(time.Millisecond), err)
		}
	}

	// A server that accepts connections but never answers: a deadline that
	// passes while no connection can be had is unavailability too, not the
	// caller's doing.
	px.stop()
	px.startBlackhole()
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelShort()
	start := time.Now()
	if _, err := p.Load(short, 1); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Load with a deadline and a server that does not answer = %v, want ErrUnavailable", err)
	} else {
		t.Logf("Load, server silent (%v): %v", time.Since(start).Round(time.Millisecond), err)
	}
	// The caller canceling is not unavailability.
	canceled, cancelNow := context.WithCancel(ctx)
	time.AfterFunc(100*time.Millisecond, cancelNow)
	if _, err := p.Load(canceled, 1); err == nil || errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Load canceled by the caller = %v, want an error that is not ErrUnavailable", err)
	}
	px.stop()

	// The server comes back: the pool reconnects by itself.
	px.start()
	got, err := p.Load(ctx, 1)
	if err != nil || got.GetVersion() != 1 {
		t.Fatalf("Load after the server came back = %v, %v", got, err)
	}
	if err := p.Save(ctx, rec(1, 2, true), 1); err != nil {
		t.Fatalf("Save after the server came back: %v", err)
	}
}

func TestPostgresStartupWaitSucceeds(t *testing.T) {
	conn := freshSchema(t)
	px := newProxy(t, testkit.URLHostPort(t, conn))
	time.AfterFunc(700*time.Millisecond, px.start)
	var logs bytes.Buffer
	start := time.Now()
	p := openPostgres(t, testkit.SetURLHost(t, conn, px.addr), store.PostgresOptions{
		StartupWait: 30 * time.Second,
		Logger:      slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if d := time.Since(start); d < 700*time.Millisecond {
		t.Fatalf("OpenPostgres returned after %v, before the server was there", d)
	}
	if err := p.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if !strings.Contains(logs.String(), "retrying") || !strings.Contains(logs.String(), "ready") {
		t.Errorf("logs do not show the wait:\n%s", logs.String())
	}
}

func TestPostgresUseAfterClose(t *testing.T) {
	p := openPostgres(t, freshSchema(t), store.PostgresOptions{})
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	ctx := context.Background()
	if err := p.Ping(ctx); err == nil || errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Ping after Close = %v, want a closed error (not ErrUnavailable: retrying will not help)", err)
	}
	if err := p.TouchLastSeen(ctx, []store.Touch{{UserID: 1, LastSeen: 1}}); err == nil {
		t.Error("TouchLastSeen after Close succeeded")
	}
	if err := p.ScanLive(ctx, func(*messages.UserState) error { return nil }); err == nil {
		t.Error("ScanLive after Close succeeded")
	}
}

func BenchmarkPostgresSave(b *testing.B) {
	p := openPostgres(b, freshSchema(b), store.PostgresOptions{})
	ctx := context.Background()
	st := rec(1, 1, true)
	if err := p.Save(ctx, st, 0); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		prev := st.Version
		st.Version++
		st.UpdatedAt++
		st.IsBusy = !st.IsBusy
		if err := p.Save(ctx, st, prev); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPostgresSaveParallel is Save throughput with many actors saving
// their own users at once, as a node under load does.
func BenchmarkPostgresSaveParallel(b *testing.B) {
	p := openPostgres(b, freshSchema(b), store.PostgresOptions{})
	ctx := context.Background()
	var mu sync.Mutex
	next := int64(0)
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		mu.Lock()
		next++
		st := rec(next, 1, true)
		mu.Unlock()
		if err := p.Save(ctx, st, 0); err != nil {
			b.Error(err)
			return
		}
		for pb.Next() {
			prev := st.Version
			st.Version++
			st.IsBusy = !st.IsBusy
			if err := p.Save(ctx, st, prev); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkPostgresTouch10k is one flush of the last_seen writer for 10,000
// users: ns/op is the time of the whole batch.
func BenchmarkPostgresTouch10k(b *testing.B) {
	conn := freshSchema(b)
	p := openPostgres(b, conn, store.PostgresOptions{})
	ctx := context.Background()
	const n = 10_000
	adminExec(b, conn, fmt.Sprintf(`INSERT INTO presence_users (user_id, username, is_online, version)
SELECT id, 'u' || id, true, 1 FROM generate_series(1, %d) AS id`, n))
	touches := make([]store.Touch, n)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range touches {
			touches[j] = store.Touch{UserID: int64(j + 1), LastSeen: int64(i + 1)}
		}
		if err := p.TouchLastSeen(ctx, touches); err != nil {
			b.Fatal(err)
		}
	}
}
