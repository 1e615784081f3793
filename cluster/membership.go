package cluster

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// viewRefresh re-reads the member list even without events, in case one
// was missed; memberlist delivers events on its own goroutines.
const viewRefresh = time.Second

// pausedAfter: a gap this long between two view refreshes means this
// process did not run (a VM or container frozen, SIGSTOP, CPU starvation)
// for about the suspicion timeout, so the others have probably declared it
// dead and taken its users over meanwhile, while its own view, frozen too,
// never changed. It then acts as if every other member had just joined:
// its actors re-read their records and the owners push to its hub again.
const pausedAfter = 3 * time.Second

// Gossip is the membership of a clustered node: it wraps memberlist,
// advertises this node's metadata, turns membership events into immutable
// Views, and keeps re-joining the seeds so a partition heals by itself
// (memberlist does not re-merge two halves that declared each other dead).
type Gossip struct {
	ml     *memberlist.Memberlist
	log    *slog.Logger
	seeds  []string
	rejoin time.Duration

	// nodes are copies of memberlist's members, taken in its event
	// callbacks (see nodeCopy).
	nodesMu sync.Mutex
	nodes   map[string]nodeCopy

	metaMu sync.Mutex
	meta   Meta
	metaB  []byte

	view     atomic.Pointer[View]
	epoch    uint64
	kick     chan struct{}
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
	onMu     sync.Mutex
	onViews  []func(old, cur *View)
	// settled is closed after the first join attempt's view (Settled).
	settled chan struct{}
}

// Join starts gossip as the member name (unique per process incarnation)
// advertising meta, and joins cfg.Seeds in the background (seeds that do
// not answer yet are retried).
func Join(cfg Config, name string, meta Meta, logger *slog.Logger) (*Gossip, error) {
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = slog.Default()
	}
	m := &Gossip{
		log:     logger,
		seeds:   cfg.Seeds,
		rejoin:  cfg.RejoinInterval,
		meta:    meta,
		kick:    make(chan struct{}, 1),
		nodes:   make(map[string]nodeCopy),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		settled: make(chan struct{}),
	}
	var err error
	if m.metaB, err = m.meta.encode(); err != nil {
		return nil, err
	}
	m.view.Store(NewView(nil, 0))
	mc, err := cfg.memberlistConfig(name)
	if err != nil {
		return nil, err
	}
	mc.Delegate = (*mlDelegate)(m)
	mc.Events = (*mlEvents)(m)
	mc.Logger = log.New(&logWriter{log: logger}, "", 0)
	if cfg.Tune != nil {
		cfg.Tune(mc)
	}
	m.ml, err = memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("start gossip on %s: %w", cfg.BindAddr, err)
	}
	m.refresh()
	go m.loop()
	return m, nil
}

// OnView registers f to be called (serially, from the membership
// goroutine) with every new view.
func (m *Gossip) OnView(f func(old, cur *View)) {
	m.onMu.Lock()
	m.onViews = append(m.onViews, f)
	m.onMu.Unlock()
}

// View returns the current view.
func (m *Gossip) View() *View { return m.view.Load() }

// LocalName is this member's memberlist name.
func (m *Gossip) LocalName() string { return m.ml.LocalNode().Name }

// GossipAddr is where this member gossips.
func (m *Gossip) GossipAddr() string {
	n := m.ml.LocalNode()
	return net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
}

// Settled is closed once the first attempt to join the seeds has ended,
// joined or not, and the view shows what it learned: memberlist's join
// exchanges the whole member list with the seed that answers, so from
// then on the view holds the cluster as the seed knew it.
func (m *Gossip) Settled() <-chan struct{} { return m.settled }

// join contacts the seeds; errors are logged and retried by the loop.
func (m *Gossip) join() bool {
	if len(m.seeds) == 0 {
		return true
	}
	n, err := m.ml.Join(m.seeds)
	if err != nil && n == 0 {
		m.log.Warn("no seed answered; will retry", slog.Any("seeds", m.seeds), slog.Any("err", err))
		return false
	}
	return true
}

// loop keeps the view fresh and re-joins the seeds. A join can block for
// seconds per unreachable seed, so it runs on its own goroutine (one at a
// time): the view must follow memberlist's failure detection meanwhile.
func (m *Gossip) loop() {
	defer close(m.done)
	refresh := time.NewTicker(viewRefresh)
	defer refresh.Stop()
	joined := make(chan bool, 1)
	join := func() { joined <- m.join() }
	joining := true
	go join()
	backoff := 500 * time.Millisecond
	var nextJoin time.Time
	lastTick := time.Now()
	for {
		select {
		case <-m.stop:
			return
		case <-m.kick:
			m.refresh()
		case ok := <-joined:
			joining = false
			now := time.Now()
			if ok {
				backoff = 500 * time.Millisecond
				nextJoin = now.Add(m.rejoin)
			} else {
				nextJoin = now.Add(backoff)
				backoff = min(2*backoff, m.rejoin)
			}
			m.refresh()
			select {
			case <-m.settled:
			default:
				close(m.settled)
			}
		case now := <-refresh.C:
			if gap := time.Since(lastTick); gap > pausedAfter {
				m.resumed(gap)
			}
			lastTick = time.Now()
			if !joining && now.After(nextJoin) {
				joining = true
				go join()
			}
			m.refresh()
		}
	}
}

// refresh rebuilds the view from memberlist's member list and announces it
// if it changed. It runs on the membership goroutine, never inside a
// memberlist callback (calling memberlist from one deadlocks).
func (m *Gossip) refresh() {
	m.nodesMu.Lock()
	nodes := make([]nodeCopy, 0, len(m.nodes))
	for _, n := range m.nodes {
		nodes = append(nodes, n)
	}
	m.nodesMu.Unlock()
	slices.SortFunc(nodes, func(a, b nodeCopy) int { return strings.Compare(a.name, b.name) })
	all := make([]Member, 0, len(nodes))
	for _, n := range nodes {
		meta, err := decodeMeta(n.meta)
		if err != nil {
			m.log.Warn("member with unreadable metadata ignored", slog.String("member", n.name), slog.Any("err", err))
			continue
		}
		all = append(all, Member{
			Name:       n.name,
			NodeName:   meta.NodeName,
			RemoteAddr: meta.RemoteAddr,
			HTTPAddr:   meta.HTTPAddr,
			GossipAddr: n.addr,
			Draining:   meta.Draining,
			State:      stateName(n.state),
			Proto:      meta.Proto,
		})
	}
	old := m.view.Load()
	if sameMembers(old.All, all) {
		return
	}
	m.epoch++
	cur := NewView(all, m.epoch)
	m.view.Store(cur)
	m.log.Info("membership changed", slog.Uint64("epoch", cur.Epoch), slog.Int("members", len(all)), slog.Int("owners", len(cur.Owners)))
	m.onMu.Lock()
	subs := append([]func(old, cur *View){}, m.onViews...)
	m.onMu.Unlock()
	for _, f := range subs {
		f(old, cur)
	}
}

// resumed tells the view's subscribers that this node did not run for gap:
// they get the current view as if every member had joined it.
func (m *Gossip) resumed(gap time.Duration) {
	m.refresh()
	m.log.Warn("this node did not run for a while; re-reading its users as after a partition", slog.Duration("gap", gap))
	cur := m.view.Load()
	m.onMu.Lock()
	subs := append([]func(old, cur *View){}, m.onViews...)
	m.onMu.Unlock()
	for _, f := range subs {
		f(NewView(nil, 0), cur)
	}
}

func sameMembers(a, b []Member) bool {
	if len(a) != len(b) {
		return false
	}
	idx := make(map[string]Member, len(a))
	for _, m := range a {
		idx[m.Name] = m
	}
	for _, m := range b {
		o, ok := idx[m.Name]
		if !ok || o.State != m.State || o.Draining != m.Draining || o.Proto != m.Proto || o.RemoteAddr != m.RemoteAddr || o.HTTPAddr != m.HTTPAddr {
			return false
		}
	}
	return true
}

func stateName(s memberlist.NodeStateType) string {
	switch s {
	case memberlist.StateAlive:
		return "alive"
	case memberlist.StateSuspect:
		return "suspect"
	case memberlist.StateDead:
		return "dead"
	case memberlist.StateLeft:
		return "left"
	}
	return "unknown"
}

// Drain advertises that this node is draining, so the others stop routing
// users to it, then keeps answering for wait (or until ctx ends) while the
// news spreads.
func (m *Gossip) Drain(ctx context.Context, wait time.Duration) error {
	err := m.setDraining(wait)
	select {
	case <-time.After(wait):
	case <-ctx.Done():
	}
	return err
}

func (m *Gossip) setDraining(timeout time.Duration) error {
	m.metaMu.Lock()
	m.meta.Draining = true
	b, err := m.meta.encode()
	if err == nil {
		m.metaB = b
	}
	m.metaMu.Unlock()
	if err != nil {
		return err
	}
	if err := m.ml.UpdateNode(timeout); err != nil {
		return fmt.Errorf("announce draining: %w", err)
	}
	m.poke()
	return nil
}

func (m *Gossip) poke() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// Leave tells the others this node is going (so they need not wait for
// failure detection), then stops gossip.
func (m *Gossip) Leave(timeout time.Duration) error {
	if !m.halt() {
		return nil
	}
	err := m.ml.Leave(timeout)
	if serr := m.ml.Shutdown(); err == nil && serr != nil {
		err = serr
	}
	return err
}

// Kill stops gossip without a goodbye, as a crash would (tests, and a
// failed start).
func (m *Gossip) Kill() error {
	if !m.halt() {
		return nil
	}
	return m.ml.Shutdown()
}

// halt stops the view loop; it reports false when gossip was stopped
// already (a Leave followed by the Kill of a failed shutdown path).
func (m *Gossip) halt() bool {
	first := false
	m.stopOnce.Do(func() {
		first = true
		close(m.stop)
	})
	<-m.done
	return first
}

// mlDelegate serves this node's metadata to memberlist.
type mlDelegate Gossip

func (d *mlDelegate) NodeMeta(limit int) []byte {
	d.metaMu.Lock()
	defer d.metaMu.Unlock()
	return d.metaB
}
func (d *mlDelegate) NotifyMsg([]byte)                           {}
func (d *mlDelegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *mlDelegate) LocalState(join bool) []byte                { return nil }
func (d *mlDelegate) MergeRemoteState(buf []byte, join bool)     {}

// nodeCopy is what the view needs of a memberlist node, copied inside the
// event callback: memberlist calls it under its node lock and keeps
// writing the *Node afterwards, so reading the node later (as Members()
// returns it) is a data race.
type nodeCopy struct {
	name, addr string
	meta       []byte
	state      memberlist.NodeStateType
}

// record keeps a copy of n (alive: joined or updated) or forgets it (dead
// or left), and pokes the membership goroutine.
func (m *Gossip) record(n *memberlist.Node, alive bool) {
	m.nodesMu.Lock()
	if alive {
		m.nodes[n.Name] = nodeCopy{
			name:  n.Name,
			addr:  net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port))),
			meta:  bytes.Clone(n.Meta),
			state: n.State,
		}
	} else {
		delete(m.nodes, n.Name)
	}
	m.nodesMu.Unlock()
	m.poke()
}

// mlEvents records the node and pokes the membership goroutine: the view is rebuilt there,
// because calling memberlist from inside its callbacks deadlocks.
type mlEvents Gossip

func (e *mlEvents) NotifyJoin(n *memberlist.Node)   { (*Gossip)(e).record(n, true) }
func (e *mlEvents) NotifyLeave(n *memberlist.Node)  { (*Gossip)(e).record(n, false) }
func (e *mlEvents) NotifyUpdate(n *memberlist.Node) { (*Gossip)(e).record(n, true) }

// logWriter turns memberlist's "[LEVEL] memberlist: ..." lines into slog.
type logWriter struct{ log *slog.Logger }

func (w *logWriter) Write(p []byte) (int, error) {
	line := string(bytes.TrimSpace(p))
	level := slog.LevelDebug
	switch {
	case bytes.Contains(p, []byte("[ERR]")):
		level = slog.LevelError
	case bytes.Contains(p, []byte("[WARN]")):
		level = slog.LevelWarn
	case bytes.Contains(p, []byte("[INFO]")):
		level = slog.LevelInfo
	}
	w.log.Log(context.Background(), level, line, slog.String("lib", "memberlist"))
	return len(p), nil
}

var _ io.Writer = (*logWriter)(nil)

// SplitHostPort splits "host:port" or ":port"; a bare host gets def.
func SplitHostPort(addr string, def int) (string, int, error) {
	if addr == "" {
		return "", def, nil
	}
	host, portS, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, def, nil //nolint:nilerr // a bare host name
	}
	port, err := strconv.Atoi(portS)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", portS)
	}
	return host, port, nil
}
