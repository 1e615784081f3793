package cluster

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// Defaults of the gossip settings.
const (
	DefaultGossipAddr     = ":7946"
	DefaultRemoteAddr     = ":8090"
	DefaultRejoinInterval = 15 * time.Second
	// viewRefresh re-reads the member list even without events, in case
	// one was missed; memberlist delivers events on its own goroutines.
	viewRefresh = time.Second
)

// membership wraps memberlist: it advertises this node's metadata, turns
// membership events into immutable Views, and keeps re-joining the seeds so
// a partition heals by itself (memberlist does not re-merge two halves that
// declared each other dead).
type membership struct {
	ml     *memberlist.Memberlist
	log    *slog.Logger
	seeds  []string
	rejoin time.Duration

	metaMu sync.Mutex
	meta   nodeMeta
	metaB  []byte

	view    atomic.Pointer[View]
	epoch   uint64
	kick    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	onMu    sync.Mutex
	onViews []func(old, cur *View)
}

type membershipConfig struct {
	name      string // memberlist name, unique per incarnation
	bindAddr  string
	advertise string
	seeds     []string
	key       string
	rejoin    time.Duration
	meta      nodeMeta
	tune      func(*memberlist.Config)
	logger    *slog.Logger
}

func newMembership(cfg membershipConfig) (*membership, error) {
	m := &membership{
		log:    cfg.logger,
		seeds:  cfg.seeds,
		rejoin: cfg.rejoin,
		meta:   cfg.meta,
		kick:   make(chan struct{}, 1),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	if m.rejoin <= 0 {
		m.rejoin = DefaultRejoinInterval
	}
	var err error
	if m.metaB, err = m.meta.encode(); err != nil {
		return nil, err
	}
	m.view.Store(newView(nil, 0))

	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.name
	host, port, err := splitHostPort(cfg.bindAddr, 7946)
	if err != nil {
		return nil, fmt.Errorf("PRESENCE_GOSSIP_ADDR=%q: %w", cfg.bindAddr, err)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	mc.BindAddr, mc.BindPort = host, port
	if cfg.advertise != "" {
		ahost, aport, err := splitHostPort(cfg.advertise, port)
		if err != nil {
			return nil, fmt.Errorf("PRESENCE_GOSSIP_ADVERTISE=%q: %w", cfg.advertise, err)
		}
		mc.AdvertiseAddr, mc.AdvertisePort = ahost, aport
	}
	if cfg.key != "" {
		key, err := base64.StdEncoding.DecodeString(cfg.key)
		if err != nil {
			return nil, fmt.Errorf("PRESENCE_GOSSIP_KEY is not base64: %w", err)
		}
		if n := len(key); n != 16 && n != 24 && n != 32 {
			return nil, fmt.Errorf("PRESENCE_GOSSIP_KEY decodes to %d bytes, want 16, 24 or 32 (AES-128/192/256)", n)
		}
		mc.SecretKey = key
	}
	mc.Delegate = (*mlDelegate)(m)
	mc.Events = (*mlEvents)(m)
	mc.Logger = log.New(&logWriter{log: cfg.logger}, "", 0)
	if cfg.tune != nil {
		cfg.tune(mc)
	}
	m.ml, err = memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("start gossip on %s: %w", cfg.bindAddr, err)
	}
	m.refresh()
	go m.loop()
	return m, nil
}

// onView registers f to be called (serially, from the membership
// goroutine) with every new view.
func (m *membership) onView(f func(old, cur *View)) {
	m.onMu.Lock()
	m.onViews = append(m.onViews, f)
	m.onMu.Unlock()
}

// View returns the current view.
func (m *membership) View() *View { return m.view.Load() }

// LocalName is this member's memberlist name.
func (m *membership) LocalName() string { return m.ml.LocalNode().Name }

// GossipAddr is where this member gossips.
func (m *membership) GossipAddr() string {
	n := m.ml.LocalNode()
	return net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
}

// join contacts the seeds; errors are logged and retried by the loop.
func (m *membership) join() bool {
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
func (m *membership) loop() {
	defer close(m.done)
	refresh := time.NewTicker(viewRefresh)
	defer refresh.Stop()
	joined := make(chan bool, 1)
	join := func() { joined <- m.join() }
	joining := true
	go join()
	backoff := 500 * time.Millisecond
	var nextJoin time.Time
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
		case now := <-refresh.C:
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
func (m *membership) refresh() {
	nodes := m.ml.Members()
	all := make([]Member, 0, len(nodes))
	for _, n := range nodes {
		meta, err := decodeMeta(n.Meta)
		if err != nil {
			m.log.Warn("member with unreadable metadata ignored", slog.String("member", n.Name), slog.Any("err", err))
			continue
		}
		all = append(all, Member{
			Name:       n.Name,
			NodeName:   meta.NodeName,
			RemoteAddr: meta.RemoteAddr,
			HTTPAddr:   meta.HTTPAddr,
			GossipAddr: net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port))),
			Draining:   meta.Draining,
			State:      stateName(n.State),
			Proto:      meta.Proto,
		})
	}
	old := m.view.Load()
	if sameMembers(old.All, all) {
		return
	}
	m.epoch++
	cur := newView(all, m.epoch)
	m.view.Store(cur)
	m.log.Info("membership changed", slog.Uint64("epoch", cur.Epoch), slog.Int("members", len(all)), slog.Int("owners", len(cur.Owners)))
	m.onMu.Lock()
	subs := append([]func(old, cur *View){}, m.onViews...)
	m.onMu.Unlock()
	for _, f := range subs {
		f(old, cur)
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

// setDraining advertises that this node is draining, so the others stop
// routing users to it.
func (m *membership) setDraining(timeout time.Duration) error {
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

func (m *membership) poke() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// leave tells the others this node is going (so they need not wait for
// failure detection), then stops gossip. Leave must come before Shutdown.
func (m *membership) leave(timeout time.Duration) error {
	close(m.stop)
	<-m.done
	err := m.ml.Leave(timeout)
	if serr := m.ml.Shutdown(); err == nil && serr != nil {
		err = serr
	}
	return err
}

// kill stops gossip without a goodbye, as a crash would (tests).
func (m *membership) kill() error {
	close(m.stop)
	<-m.done
	return m.ml.Shutdown()
}

// mlDelegate serves this node's metadata to memberlist.
type mlDelegate membership

func (d *mlDelegate) NodeMeta(limit int) []byte {
	d.metaMu.Lock()
	defer d.metaMu.Unlock()
	return d.metaB
}
func (d *mlDelegate) NotifyMsg([]byte)                           {}
func (d *mlDelegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *mlDelegate) LocalState(join bool) []byte                { return nil }
func (d *mlDelegate) MergeRemoteState(buf []byte, join bool)     {}

// mlEvents only pokes the membership goroutine: the view is rebuilt there,
// because calling memberlist from inside its callbacks deadlocks.
type mlEvents membership

func (e *mlEvents) NotifyJoin(*memberlist.Node)   { (*membership)(e).poke() }
func (e *mlEvents) NotifyLeave(*memberlist.Node)  { (*membership)(e).poke() }
func (e *mlEvents) NotifyUpdate(*memberlist.Node) { (*membership)(e).poke() }

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

// splitHostPort splits "host:port" or ":port"; a bare host gets def.
func splitHostPort(addr string, def int) (string, int, error) {
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
