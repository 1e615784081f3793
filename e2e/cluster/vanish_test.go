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
	c := newCluster(t, node.Config{})
	c.fence = true // a killed node's actors keep running in-process: its store refuses them
	bind := freeLoopbackAddr(t)
	host := newVanishingHost(t, bind)
	a, cc := c.Start("A"), c.Start("C")
	b := c.start("B", bind, host.addr())
	c.waitConverged([]*tnode{a, b, cc}, nil, 15*time.Second)
	watched := c.usersOwnedBy(b, 3, 1000)
	for _, u := range watched {
		a.API.Must(t).Heartbeat(u) // A's connection to B, through the host
	}
	// A subscriber on A: when B is back, A's hub re-subscribes its users
	// at their new owners, some of them at the new B.
	sub := testkit.MustDialUser(t, a.HTTPAddr(), c.tok, 9001, watched)
	defer sub.Close()

	host.vanish()
	c.kill(b)
	c.waitConverged([]*tnode{a, cc}, nil, 20*time.Second)

	// The new B; nothing but what the nodes send by themselves crosses
	// the host before the requests below (A's view, watched in-process).
	host.back()
	b2 := c.start("B", bind, host.addr())
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

	// An attempt at a remote owner lasts a second (routing.remoteAttempt);
	// a request lost down the dead connection needs more than that, and
	// an owner marked as failing is refused with 503.
	for _, u := range users {
		ctx, cancel := context.WithTimeout(context.Background(), 900*time.Millisecond)
		start := time.Now()
		err := a.API.CallContext(ctx, u, http.MethodPost, "/users/me/heartbeat", "", nil)
		cancel()
		if err != nil {
			t.Fatalf("heartbeat of %d (owned by the new B) through A after %v: %v", u, time.Since(start), err)
		}
	}
	c.waitConverged([]*tnode{a, b2, cc}, nil, 20*time.Second)
	// Nothing at all, the nodes' own traffic included (hub re-subscriptions,
	// answers to the new B's requests), went down a connection to the
	// vanished process.
	if n := host.resets(); n > 0 {
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
	c := newCluster(t, node.Config{})
	c.fence = true
	bind := freeLoopbackAddr(t)
	host := newVanishingHost(t, bind)
	a := c.Start("A")
	b := c.start("B", bind, host.addr())
	c.waitConverged([]*tnode{a, b}, nil, 15*time.Second)
	for _, u := range c.usersOwnedBy(b, 3, 1000) {
		a.API.Must(t).Heartbeat(u) // A's connection to B, through the host
	}
	old := b.member

	host.vanish()
	c.kill(b)
	host.back()
	b2 := c.start("B", bind, host.addr())
	var users []int64
	if _, err := testkit.Poll(20*time.Second, 5*time.Millisecond, func() error {
		if !ownsAny(a, old) {
			users = users[:0]
			return nil // declared dead already: the case of the test above
		}
		users = users[:0]
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
	for _, u := range users {
		ctx, cancel := context.WithTimeout(context.Background(), 900*time.Millisecond)
		start := time.Now()
		err := a.API.CallContext(ctx, u, http.MethodPost, "/users/me/heartbeat", "", nil)
		cancel()
		if err != nil {
			t.Fatalf("heartbeat of %d (owned by the new B, the old one still in A's view) through A after %v: %v", u, time.Since(start), err)
		}
	}
	// No check of the old connections here: until the new B shows up, A
	// may still send to the old one (it does not know it died), and the
	// old connection's transport may still acknowledge a ping on its way
	// out.
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
