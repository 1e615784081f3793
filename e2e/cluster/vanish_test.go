//go:build !race

package clustere2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/presence-cluster/presence/internal/testkit"
	"github.com/presence-cluster/presence/node"
)

// TestRestartAtTheAddressOfAVanishedHost: node B's host vanishes without
// closing its connections (a killed container or VM: what A has sent down
// its connection to B is neither answered nor refused), failure detection
// declares B dead, and a new B starts at the same remoting address. The
// first requests A routes to the new B are answered on their first attempt:
// A dropped its connection to the vanished process when B left its view,
// so it dials the new one instead of losing them down the dead connection
// until the new host resets it (each then waited out the attempt and a
// liveness probe, and the owner was refused as failing: seen as 503s in
// the container suite's partition test after its kill test).
func TestRestartAtTheAddressOfAVanishedHost(t *testing.T) {
	s := newVanishScene(t, "C")
	a, cc := s.a, s.others[0]
	// A subscriber on A: when B is back, A's hub re-subscribes its users
	// at their new owners, some of them at the new B.
	sub := testkit.MustDialUser(t, a.HTTPAddr(), s.c.tok, 9001, s.bUsers)
	defer sub.Close()

	s.host.vanish()
	s.c.kill(s.b)
	s.c.waitConverged([]*tnode{a, cc}, nil, 20*time.Second)

	// The new B; nothing but what the nodes send by themselves crosses
	// the host before the requests below (A's view, watched in-process).
	b2 := s.restartB()
	var users []int64
	if _, err := testkit.Poll(20*time.Second, 10*time.Millisecond, func() error {
		users = users[:0]
		for id := int64(5000); len(users) < 5 && id < 6000; id++ {
			if a.Router().Owner(id) == b2.member && b2.Router().Owns(id) {
				users = append(users, id)
			}
		}
		if len(users) < 5 {
			return fmt.Errorf("A does not route to the new B yet")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	heartbeatsAnsweredAtOnce(t, a, users, "owned by the new B")
	s.c.waitConverged([]*tnode{a, b2, cc}, nil, 20*time.Second)
	// Nothing at all, the nodes' own traffic included (hub re-subscriptions,
	// answers to the new B's requests), went down a connection to the
	// vanished process.
	if n := s.host.resets(); n > 0 {
		t.Errorf("%d connections to the vanished process were still used after the new one came up", n)
	}
}

// TestRestartAtTheAddressBeforeDetection: as above, but the new B starts
// before failure detection has declared the old one dead, so both are in
// A's view for a moment. A new member at the address of another is proof
// that the old process is gone: A drops its connection to the address
// when the new member appears, and the new B's users are answered at once.
// Without that, the first request went down the old connection in 3 of 4
// runs (in the fourth, A's own traffic had reset it first).
func TestRestartAtTheAddressBeforeDetection(t *testing.T) {
	s := newVanishScene(t)
	a, old := s.a, s.b.member

	s.host.vanish()
	s.c.kill(s.b)
	b2 := s.restartB()
	var users []int64
	if _, err := testkit.Poll(20*time.Second, 5*time.Millisecond, func() error {
		users = users[:0]
		if !ownsAny(a, old) {
			return nil // declared dead already: the case of the test above
		}
		for id := int64(5000); len(users) < 3 && id < 6000; id++ {
			if a.Router().Owner(id) == b2.member {
				users = append(users, id)
			}
		}
		if len(users) < 3 {
			return fmt.Errorf("A does not route to the new B yet")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(users) == 0 {
		t.Skip("the old B was declared dead before A saw the new one; nothing to test in this run")
	}
	heartbeatsAnsweredAtOnce(t, a, users, "owned by the new B, the old one still in A's view")
	// No check of the old connections here: until the new B shows up, A
	// may still send to the old one (it does not know it died), and the
	// old connection's transport may still acknowledge a ping on its way
	// out.
}

// vanishScene is a cluster whose node B is reached through a
// vanishingHost, with A connected to B through it.
type vanishScene struct {
	c      *tcluster
	host   *vanishingHost
	bind   string // B's remoting address behind the host
	a, b   *tnode
	others []*tnode // started between A and B, by label
	bUsers []int64  // users of B that A heartbeated
}

// newVanishScene starts A, the others, then B behind the host, and has A
// heartbeat three of B's users.
func newVanishScene(t *testing.T, others ...string) *vanishScene {
	c := newCluster(t, node.Config{})
	c.fence = true // a killed node's actors keep running in-process: its store refuses them
	s := &vanishScene{c: c, a: c.Start("A")}
	for _, l := range others {
		s.others = append(s.others, c.Start(l))
	}
	// B's port is picked just before B binds it: a node started after
	// the pick could take it for one of its own.
	s.bind = freeLoopbackAddr(t)
	s.host = newVanishingHost(t, s.bind)
	s.b = c.start("B", s.bind, s.host.addr())
	c.waitConverged(append([]*tnode{s.a, s.b}, s.others...), nil, 15*time.Second)
	s.bUsers = c.usersOwnedBy(s.b, 3, 1000)
	for _, u := range s.bUsers {
		s.a.API.Must(t).Heartbeat(u) // A's connection to B, through the host
	}
	return s
}

// restartB puts a host at B's address again and starts a new B there.
func (s *vanishScene) restartB() *tnode {
	s.host.back()
	return s.c.start("B", s.bind, s.host.addr())
}

// heartbeatsAnsweredAtOnce sends a heartbeat of each user through via and
// fails unless each is answered within 900 ms. An attempt at a remote
// owner lasts a second (routing.remoteAttempt): a request lost down a dead
// connection needs more than that, and an owner marked as failing is
// refused with 503.
func heartbeatsAnsweredAtOnce(t *testing.T, via *tnode, users []int64, whose string) {
	t.Helper()
	for _, u := range users {
		ctx, cancel := context.WithTimeout(context.Background(), 900*time.Millisecond)
		start := time.Now()
		err := via.API.CallContext(ctx, u, http.MethodPost, "/users/me/heartbeat", "", nil)
		cancel()
		if err != nil {
			t.Fatalf("heartbeat of %d (%s) through %s after %v: %v", u, whose, via.label, time.Since(start), err)
		}
	}
}

// ownsAny reports whether member owns any of users 1-1000 in n's view.
func ownsAny(n *tnode, member string) bool {
	for id := int64(1); id <= 1000; id++ {
		if n.Router().Owner(id) == member {
			return true
		}
	}
	return false
}

func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// vanishingHost stands between the cluster and one node's remoting port as
// the network stands between peers and a host. vanish makes the host
// disappear without a word: its connections swallow what is sent and
// answer nothing, and new ones wait. back makes a new process answer at
// the address: new connections, and those that waited, reach it; a
// connection from before is reset by the first bytes sent on it, as a
// kernel resets a connection it does not know.
type vanishingHost struct {
	t      *testing.T
	ln     net.Listener
	target string

	mu      sync.Mutex
	gone    bool
	backCh  chan struct{} // closed while the host is there
	conns   map[*hostConn]bool
	nresets int
}

// hostConn is one proxied connection; stale once its host vanished (a
// new host at the address does not know it).
type hostConn struct {
	client, upstream net.Conn
	stale            bool
}

func newVanishingHost(t *testing.T, target string) *vanishingHost {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &vanishingHost{t: t, ln: ln, target: target, conns: map[*hostConn]bool{}, backCh: make(chan struct{})}
	close(h.backCh)
	t.Cleanup(h.close)
	go h.accept()
	return h
}

func (h *vanishingHost) addr() string { return h.ln.Addr().String() }

func (h *vanishingHost) accept() {
	for {
		client, err := h.ln.Accept()
		if err != nil {
			return
		}
		go h.serve(client)
	}
}

// serve proxies a new connection. One opened while the host is gone waits
// for it to be back, as a connection attempt whose SYNs go unanswered
// completes with the host that answers at the address next.
func (h *vanishingHost) serve(client net.Conn) {
	h.mu.Lock()
	back := h.backCh
	h.mu.Unlock()
	<-back
	up, err := net.DialTimeout("tcp", h.target, time.Second)
	if err != nil { // the host is up, the port closed: refused
		resetConn(client)
		return
	}
	hc := &hostConn{client: client, upstream: up}
	h.mu.Lock()
	hc.stale = h.gone // vanished meanwhile
	h.conns[hc] = true
	h.mu.Unlock()
	go h.toClient(hc)
	h.fromClient(hc)
}

// fromClient forwards what the client sends while the host is there,
// swallows it while it is gone, and resets a stale connection once the
// host is back.
func (h *vanishingHost) fromClient(hc *hostConn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := hc.client.Read(buf)
		h.mu.Lock()
		stale, gone := hc.stale, h.gone
		if stale && !gone && n > 0 {
			h.nresets++
		}
		h.mu.Unlock()
		switch {
		case stale && !gone && n > 0:
			resetConn(hc.client)
			return
		case err != nil:
			if !stale {
				hc.upstream.Close()
			}
			return
		case stale:
			// swallowed
		default:
			if _, err := hc.upstream.Write(buf[:n]); err != nil {
				return
			}
		}
	}
}

// toClient forwards the host's answers until it vanishes; the end of a
// vanished host's connection never reaches the client.
func (h *vanishingHost) toClient(hc *hostConn) {
	_, err := io.Copy(hc.client, hc.upstream)
	h.mu.Lock()
	stale := hc.stale
	h.mu.Unlock()
	if !stale && (err == nil || !errors.Is(err, net.ErrClosed)) {
		hc.client.Close()
	}
}

// vanish takes the host off the network: nothing in or out, nothing closed.
func (h *vanishingHost) vanish() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.gone = true
	h.backCh = make(chan struct{})
	for hc := range h.conns {
		hc.stale = true
	}
}

// back puts a host at the address again.
func (h *vanishingHost) back() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.gone = false
	close(h.backCh)
	for hc := range h.conns {
		if hc.stale {
			hc.upstream.Close() // the old process's end, gone with it
		}
	}
}

func (h *vanishingHost) resets() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.nresets
}

func (h *vanishingHost) close() {
	h.ln.Close()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.gone {
		h.gone = false
		close(h.backCh) // the waiting connections end at the closed port
	}
	for hc := range h.conns {
		hc.client.Close()
		hc.upstream.Close()
	}
}

// resetConn closes c with a TCP reset instead of a FIN.
func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}
