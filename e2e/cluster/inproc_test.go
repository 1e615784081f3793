//go:build !race

package clustere2e

// In-process cluster harness: nodes started with node.Start on loopback,
// sharing one memory store, with fast failure detection and a gossip
// transport that can cut chosen links.
//
// Two protoactor-go remotes in one process trip the race detector inside
// the library, hence the build tag.

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/presence-cluster/presence/messages"
	"github.com/presence-cluster/presence/node"
	"github.com/presence-cluster/presence/store"

	"github.com/presence-cluster/presence/internal/testkit"
)

// ---------------------------------------------------------------- fault injection

// faultNet knows every test node's gossip address and which links are cut.
// A cut link drops every UDP packet and refuses every TCP stream in both
// directions, as a network partition would; the actor remoting and HTTP
// are not affected (views split, the data path does not).
type faultNet struct {
	mu     sync.RWMutex
	byAddr map[string]string // gossip addr -> node label
	cut    map[[2]string]bool
	// dropped counts what the cut discarded.
	dropped atomic.Int64
}

func newFaultNet() *faultNet {
	return &faultNet{byAddr: map[string]string{}, cut: map[[2]string]bool{}}
}

func (f *faultNet) register(addr, label string) {
	f.mu.Lock()
	f.byAddr[addr] = label
	f.mu.Unlock()
}

// blocked reports whether traffic between node self and addr is cut.
func (f *faultNet) blocked(self, addr string) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	peer, ok := f.byAddr[addr]
	if !ok {
		return false
	}
	if f.cut[[2]string{self, peer}] {
		f.dropped.Add(1)
		return true
	}
	return false
}

// partition cuts every link between a node of side1 and a node of side2.
func (f *faultNet) partition(side1, side2 []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range side1 {
		for _, b := range side2 {
			f.cut[[2]string{a, b}] = true
			f.cut[[2]string{b, a}] = true
		}
	}
}

// heal restores every link.
func (f *faultNet) heal() {
	f.mu.Lock()
	f.cut = map[[2]string]bool{}
	f.mu.Unlock()
}

// faultTransport is memberlist's NetTransport with the cuts of a faultNet
// applied: outbound packets to a cut peer vanish, dials to it fail, and
// inbound packets from it are dropped.
type faultTransport struct {
	*memberlist.NetTransport
	net     *faultNet
	self    string
	packets chan *memberlist.Packet
	stop    chan struct{}
	once    sync.Once
}

var _ memberlist.NodeAwareTransport = (*faultTransport)(nil)

func newFaultTransport(fn *faultNet, self string) (*faultTransport, int, error) {
	var nt *memberlist.NetTransport
	var err error
	for range 10 {
		nt, err = memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{"127.0.0.1"}, BindPort: 0})
		if err == nil {
			break
		}
	}
	if err != nil {
		return nil, 0, err
	}
	port := nt.GetAutoBindPort()
	ft := &faultTransport{NetTransport: nt, net: fn, self: self, packets: make(chan *memberlist.Packet), stop: make(chan struct{})}
	fn.register(net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), self)
	go ft.filter()
	return ft, port, nil
}

func (t *faultTransport) filter() {
	in := t.NetTransport.PacketCh()
	for {
		select {
		case p := <-in:
			if p.From != nil && t.net.blocked(t.self, p.From.String()) {
				continue
			}
			select {
			case t.packets <- p:
			case <-t.stop:
				return
			}
		case <-t.stop:
			return
		}
	}
}

func (t *faultTransport) PacketCh() <-chan *memberlist.Packet { return t.packets }

func (t *faultTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	if t.net.blocked(t.self, addr) {
		return time.Now(), nil
	}
	return t.NetTransport.WriteTo(b, addr)
}

func (t *faultTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if t.net.blocked(t.self, a.Addr) {
		return time.Now(), nil
	}
	return t.NetTransport.WriteToAddress(b, a)
}

func (t *faultTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if t.net.blocked(t.self, addr) {
		return nil, fmt.Errorf("fault injection: link %s -> %s is cut", t.self, addr)
	}
	return t.NetTransport.DialTimeout(addr, timeout)
}

func (t *faultTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if t.net.blocked(t.self, a.Addr) {
		return nil, fmt.Errorf("fault injection: link %s -> %s is cut", t.self, a.Addr)
	}
	return t.NetTransport.DialAddressTimeout(a, timeout)
}

// Shutdown stops the listeners before the filter: a listener blocked
// handing over a packet needs the filter to take it (memberlist keeps
// reading PacketCh until its transport has shut down).
func (t *faultTransport) Shutdown() error {
	err := t.NetTransport.Shutdown()
	t.once.Do(func() { close(t.stop) })
	return err
}

// fastGossip is memberlist tuning for loopback tests: a crashed member is
// declared dead in about a second.
func fastGossip(mc *memberlist.Config) {
	mc.ProbeInterval = 200 * time.Millisecond
	mc.ProbeTimeout = 100 * time.Millisecond
	mc.SuspicionMult = 2
	mc.GossipInterval = 50 * time.Millisecond
	mc.PushPullInterval = time.Second
	mc.TCPTimeout = time.Second
	mc.IndirectChecks = 1
}

// ---------------------------------------------------------------- store

// nodeStore is one node's handle on the cluster's shared store. Once the
// node is killed it counts the calls the node still makes (a crashed
// process makes none) and, when fenced, refuses them as a database would
// refuse a dead process's connection.
type nodeStore struct {
	store.Store
	killed atomic.Bool
	fence  atomic.Bool
	// afterKill counts calls made after the kill, by kind.
	mu        sync.Mutex
	afterKill map[string]int
}

func (s *nodeStore) gate(kind string) error {
	if !s.killed.Load() {
		return nil
	}
	s.mu.Lock()
	if s.afterKill == nil {
		s.afterKill = map[string]int{}
	}
	s.afterKill[kind]++
	s.mu.Unlock()
	if s.fence.Load() {
		return store.ErrUnavailable
	}
	return nil
}

func (s *nodeStore) callsAfterKill() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for k, v := range s.afterKill {
		out[k] = v
	}
	return out
}

func (s *nodeStore) Load(ctx context.Context, id int64) (*messages.UserState, error) {
	if err := s.gate("Load"); err != nil {
		return nil, err
	}
	return s.Store.Load(ctx, id)
}

func (s *nodeStore) Save(ctx context.Context, st *messages.UserState, prev uint64) error {
	if err := s.gate("Save"); err != nil {
		return err
	}
	return s.Store.Save(ctx, st, prev)
}

func (s *nodeStore) TouchLastSeen(ctx context.Context, ts []store.Touch) error {
	if err := s.gate("TouchLastSeen"); err != nil {
		return err
	}
	return s.Store.TouchLastSeen(ctx, ts)
}

func (s *nodeStore) ScanLive(ctx context.Context, fn func(*messages.UserState) error) error {
	if err := s.gate("ScanLive"); err != nil {
		return err
	}
	return s.Store.ScanLive(ctx, fn)
}

func (s *nodeStore) Close() error { return nil }

// ---------------------------------------------------------------- logs

// newLogRing keeps a node's latest log records (info and above) for
// failure messages, and every "stored timers re-armed" record.
func newLogRing() *testkit.LogSink {
	return &testkit.LogSink{MinLevel: slog.LevelInfo, Limit: 300, Keep: map[string]bool{"stored timers re-armed": true}}
}

// rearmCounts sums the counts of the "stored timers re-armed" records.
func rearmCounts(l *testkit.LogSink) (runs int, offline, busy int64) {
	for _, r := range l.Find("stored timers re-armed") {
		runs++
		offline += r.Attrs["users_marked_offline"].Int64()
		busy += r.Attrs["busy_status_cleared"].Int64()
	}
	return runs, offline, busy
}

// ---------------------------------------------------------------- cluster

// tnode is one in-process node of a test cluster.
type tnode struct {
	*node.Node
	label  string // PRESENCE_NODE_NAME: A, B, ...
	member string // memberlist name (label plus a random suffix)
	gossip string // gossip address
	API    *testkit.REST
	logs   *testkit.LogSink
	store  *nodeStore
	down   atomic.Bool
}

// tcluster is a set of in-process nodes sharing one store.
type tcluster struct {
	t     *testing.T
	tok   *testkit.Tokens
	store store.Store
	net   *faultNet
	base  node.Config
	// fence makes a killed node's store handle refuse every call, so
	// Kill behaves like a crash (see TestRegression_KillLeavesActorsRunning).
	fence bool

	mu    sync.Mutex
	nodes []*tnode
}

// newCluster prepares a cluster; base supplies per-test settings
// (OfflineAfter, Clock, ...). Nodes still running when the test ends are
// killed.
func newCluster(t *testing.T, base node.Config) *tcluster {
	c := &tcluster{t: t, tok: newTokens(), store: store.NewMemory(), net: newFaultNet(), base: base}
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range c.all() {
				t.Logf("last logs of node %s (%s):\n    %s", n.label, n.member, n.logs.Dump())
			}
		}
		var wg sync.WaitGroup
		for _, n := range c.all() {
			// Killed nodes' actors keep running (TestRegression_KillLeavesActorsRunning):
			// unfence their store so they settle instead of retrying
			// refused writes for the rest of the package.
			n.store.fence.Store(false)
			if n.down.CompareAndSwap(false, true) {
				wg.Add(1)
				go func() { defer wg.Done(); n.Kill() }()
			}
		}
		wg.Wait()
	})
	return c
}

func (c *tcluster) all() []*tnode {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*tnode(nil), c.nodes...)
}

// live returns the nodes not stopped.
func (c *tcluster) live() []*tnode {
	var out []*tnode
	for _, n := range c.all() {
		if !n.down.Load() {
			out = append(out, n)
		}
	}
	return out
}

// start starts node label, seeded with the gossip addresses of every live
// node.
func (c *tcluster) Start(label string) *tnode {
	c.t.Helper()
	return c.start(label, "", "")
}

// start is Start with the node's remoting bound to remoteBind and
// advertised as remoteAdvertise when they are set.
func (c *tcluster) start(label, remoteBind, remoteAdvertise string) *tnode {
	t := c.t
	t.Helper()
	ns := &nodeStore{Store: c.store}
	ns.fence.Store(c.fence)
	var seeds []string
	for _, n := range c.live() {
		seeds = append(seeds, n.gossip)
	}
	logs := newLogRing()
	var gossipPort int
	var tuneErr error
	n, err := testkit.StartMember(t, c.base, testkit.Member{
		Name: label, Seeds: seeds, Store: ns, Secret: testkit.ProcSecret,
		Logger:     logs.Logger().With(slog.String("node", label)),
		RemoteBind: remoteBind, RemoteAdvertise: remoteAdvertise,
		TuneGossip: func(mc *memberlist.Config) {
			fastGossip(mc)
			ft, port, err := newFaultTransport(c.net, label)
			if err != nil {
				tuneErr = err
				return
			}
			gossipPort = port
			mc.Transport = ft
			mc.BindAddr, mc.BindPort = "127.0.0.1", port
			mc.AdvertiseAddr, mc.AdvertisePort = "127.0.0.1", port
		},
	})
	if tuneErr != nil {
		t.Fatalf("node %s: gossip transport: %v", label, tuneErr)
	}
	if err != nil {
		t.Fatalf("node %s: node.Start: %v", label, err)
	}
	tn := &tnode{Node: n, label: label, gossip: net.JoinHostPort("127.0.0.1", strconv.Itoa(gossipPort)), API: testkit.NewREST(n.HTTPAddr(), c.tok), logs: logs, store: ns}
	c.mu.Lock()
	c.nodes = append(c.nodes, tn)
	c.mu.Unlock()
	// The memberlist name, from the router rather than GET /admin/cluster,
	// which would ask the other members for statistics (traffic a test of
	// the first messages between nodes must not have).
	for id := int64(1); tn.member == ""; id++ {
		if n.Router().Owns(id) {
			tn.member = n.Router().Owner(id)
		}
	}
	return tn
}

// kill crashes n (no leave, nothing flushed). From now on its store
// handle counts (and, fenced, refuses) what the node still does.
func (c *tcluster) kill(n *tnode) {
	if n.down.CompareAndSwap(false, true) {
		n.store.killed.Store(true)
		n.Kill()
	}
}

// shutdown stops n gracefully.
func (c *tcluster) shutdown(n *tnode) error {
	if !n.down.CompareAndSwap(false, true) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return n.Shutdown(ctx)
}

// node returns the node whose memberlist name is member.
func (c *tcluster) node(member string) *tnode {
	for _, n := range c.all() {
		if n.member == member {
			return n
		}
	}
	return nil
}

// owner is the node owning id in the view of node via.
func (c *tcluster) owner(via *tnode, id int64) *tnode { return c.node(via.Router().Owner(id)) }

// converged returns nil when every node of want sees exactly want as its
// alive, user-owning members, and all of them agree on the owner of ids.
func (c *tcluster) converged(want []*tnode, ids []int64) error {
	var names []string
	for _, n := range want {
		names = append(names, n.member)
	}
	sort.Strings(names)
	for _, n := range want {
		st, err := n.API.Cluster()
		if err != nil {
			return fmt.Errorf("node %s: %v", n.label, err)
		}
		var got []string
		for _, m := range st.Members {
			if m.Status != "alive" || !m.Owner || m.Draining {
				return fmt.Errorf("node %s sees %s", n.label, st)
			}
			got = append(got, m.Name)
		}
		sort.Strings(got)
		if !slices.Equal(got, names) {
			return fmt.Errorf("node %s sees %s, want members %v", n.label, st, names)
		}
	}
	for _, id := range ids {
		o := want[0].Router().Owner(id)
		for _, n := range want[1:] {
			if other := n.Router().Owner(id); other != o {
				return fmt.Errorf("user %d: owner %s in the view of %s, %s in the view of %s", id, o, want[0].label, other, n.label)
			}
		}
	}
	return nil
}

// waitConverged waits until converged(want, ids) holds and returns how
// long that took.
func (c *tcluster) waitConverged(want []*tnode, ids []int64, timeout time.Duration) time.Duration {
	c.t.Helper()
	return testkit.Eventually(c.t, timeout, "cluster converged", func() error { return c.converged(want, ids) })
}

// usersOwnedBy returns k user ids from start up that n owns in the view of
// every live node.
func (c *tcluster) usersOwnedBy(n *tnode, k int, start int64) []int64 {
	var out []int64
	live := c.live()
	for id := start; len(out) < k; id++ {
		ok := true
		for _, v := range live {
			if v.Router().Owner(id) != n.member {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, id)
		}
		if id > start+100_000 {
			c.t.Fatalf("no user owned by %s found", n.label)
		}
	}
	return out
}

// waitHostedSum waits until the actors hosted over the cluster, as via
// reports them, add up to want: one activation per active user.
func waitHostedSum(t *testing.T, via *tnode, want int64, what string) {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, what, func() error {
		h, err := via.API.Hosted()
		if err != nil {
			return err
		}
		var sum int64
		for _, v := range h {
			sum += v
		}
		if sum != want {
			return fmt.Errorf("actors_hosted %v sums to %d, want %d", h, sum, want)
		}
		return nil
	})
}
