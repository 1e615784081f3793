package testkit

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// ProcSecret is the HS256 secret of the nodes of a ProcCluster.
const ProcSecret = "cluster-e2e-secret-0123456789abcdef"

// ProcClusterKey is the cluster key (PRESENCE_GOSSIP_KEY) of the nodes of
// a ProcCluster: as in the deploy files, gossip is encrypted and every
// remoting call carries a credential derived from it.
const ProcClusterKey = "cHJvYy1jbHVzdGVyLWtleS0wMTIzNDU2Nzg5YWJjZGU="

type procPorts struct{ http, gossip, remote int }

// ProcCluster is n presenced processes on fixed loopback ports (a
// restarted node gets its ports back), seeded with each other's gossip
// addresses, with an "up" flag per node that clients route by.
type ProcCluster struct {
	t     testing.TB
	bin   string
	Tok   *Tokens
	env   map[string]string
	ports []procPorts

	mu    sync.Mutex
	procs []*Proc
	up    []bool
	// Rests are clients of each node for traffic loops (7s timeout), set
	// once the node first starts.
	Rests []*REST
}

// NewProcCluster reserves ports for n nodes; env is added to every node's
// (after the cluster's own settings, so it may override them).
func NewProcCluster(t testing.TB, bin string, tok *Tokens, n int, env map[string]string) *ProcCluster {
	c := &ProcCluster{t: t, bin: bin, Tok: tok, env: env, procs: make([]*Proc, n), up: make([]bool, n), Rests: make([]*REST, n)}
	ps := FreePorts(t, 3*n)
	for i := range n {
		c.ports = append(c.ports, procPorts{ps[3*i], ps[3*i+1], ps[3*i+2]})
	}
	return c
}

// Name is the node name of node i: p1, p2, ...
func (c *ProcCluster) Name(i int) string { return fmt.Sprintf("p%d", i+1) }

// HTTPAddr is the HTTP address of node i.
func (c *ProcCluster) HTTPAddr(i int) string { return "127.0.0.1:" + strconv.Itoa(c.ports[i].http) }

// Start starts node i (again) and marks it up.
func (c *ProcCluster) Start(i int) *Proc {
	c.t.Helper()
	return c.Launch(i, true)
}

// StartAll starts every node and marks it up.
func (c *ProcCluster) StartAll() {
	c.t.Helper()
	for i := range c.ports {
		c.Start(i)
	}
}

// Launch starts node i (again); up says whether clients may use it yet.
func (c *ProcCluster) Launch(i int, up bool) *Proc {
	c.t.Helper()
	var seeds []string
	for j, p := range c.ports {
		if j != i {
			seeds = append(seeds, "127.0.0.1:"+strconv.Itoa(p.gossip))
		}
	}
	env := map[string]string{
		"PRESENCE_STANDALONE":      "false",
		"PRESENCE_NODE_NAME":       c.Name(i),
		"PRESENCE_HTTP_ADDR":       c.HTTPAddr(i),
		"PRESENCE_GOSSIP_ADDR":     "127.0.0.1:" + strconv.Itoa(c.ports[i].gossip),
		"PRESENCE_REMOTE_ADDR":     "127.0.0.1:" + strconv.Itoa(c.ports[i].remote),
		"PRESENCE_SEEDS":           strings.Join(seeds, ","),
		"PRESENCE_JWT_SECRET":      string(c.Tok.Secret()),
		"PRESENCE_GOSSIP_KEY":      ProcClusterKey,
		"PRESENCE_REJOIN_INTERVAL": "2s",
	}
	for k, v := range c.env {
		env[k] = v
	}
	p := StartProc(c.t, c.bin, c.Name(i), env, c.Tok)
	c.mu.Lock()
	c.procs[i] = p
	if c.Rests[i] == nil {
		c.Rests[i] = NewREST(c.HTTPAddr(i), c.Tok).WithTimeout(7 * time.Second)
	}
	c.up[i] = up
	c.mu.Unlock()
	return p
}

// Proc is the current process of node i.
func (c *ProcCluster) Proc(i int) *Proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.procs[i]
}

// SetUp marks node i up or down for clients.
func (c *ProcCluster) SetUp(i int, up bool) {
	c.mu.Lock()
	c.up[i] = up
	c.mu.Unlock()
}

// UpIndexes lists the nodes marked up, starting from the k-th (mod n), so
// callers spread their traffic.
func (c *ProcCluster) UpIndexes(k int) []int {
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

// Kill9 marks node i down, SIGKILLs it and waits for it to exit.
func (c *ProcCluster) Kill9(i int) {
	c.t.Helper()
	c.SetUp(i, false)
	p := c.Proc(i)
	if err := p.Kill(); err != nil {
		c.t.Fatalf("kill %s: %v", p.name, err)
	}
}

// Term SIGTERMs node i and waits (at most limit) for it to exit; it
// returns how long the graceful stop took and the exit code. Clients keep
// sending to the node while it drains; it is marked down once it exited.
func (c *ProcCluster) Term(i int, limit time.Duration) (time.Duration, int) {
	c.t.Helper()
	defer c.SetUp(i, false)
	p := c.Proc(i)
	took, ok, err := p.Term(limit)
	if err != nil {
		c.t.Fatalf("SIGTERM %s: %v", p.name, err)
	}
	if !ok {
		c.t.Fatalf("%s did not exit within %v of SIGTERM:\n    %s", p.name, limit, p.Tail(40))
	}
	return took, p.ExitCode()
}

// CheckAlive fails the test if a node marked up has exited.
func (c *ProcCluster) CheckAlive() {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, p := range c.procs {
		if p != nil && c.up[i] && p.HasExited() {
			c.t.Fatalf("%s exited (code %d):\n    %s", p.name, p.ExitCode(), p.Tail(60))
		}
	}
}

// WaitFormed waits until every node marked up answers /readyz 200 and
// sees exactly the up nodes as alive owners.
func (c *ProcCluster) WaitFormed(timeout time.Duration, what string) time.Duration {
	c.t.Helper()
	return Eventually(c.t, timeout, what, func() error {
		c.CheckAlive()
		ups := c.UpIndexes(0)
		var views []string
		bad := false
		for _, i := range ups {
			p := c.Proc(i)
			if err := p.API.Call(0, "GET", "/readyz", "", nil); err != nil {
				views = append(views, fmt.Sprintf("%s /readyz: %v", p.name, err))
				bad = true
				continue
			}
			st, err := p.API.Cluster()
			if err != nil {
				views = append(views, fmt.Sprintf("%s: %v", p.name, err))
				bad = true
				continue
			}
			views = append(views, fmt.Sprintf("%s sees %s", p.name, st))
			if len(st.Members) != len(ups) || AliveOwners(st) != len(ups) {
				bad = true
			}
		}
		if bad {
			return fmt.Errorf("\n  %s", strings.Join(views, "\n  "))
		}
		return nil
	})
}

// Hosted returns actors_hosted per node name, as node i reports them.
func (c *ProcCluster) Hosted(i int) (map[string]int64, error) {
	return c.Proc(i).API.Hosted()
}

// CheckLogs fails the test if a node's output shows a panic or a data
// race.
func (c *ProcCluster) CheckLogs() {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.procs {
		if p == nil {
			continue
		}
		b, _ := os.ReadFile(p.Log)
		for _, bad := range []string{"panic:", "DATA RACE", "fatal error:"} {
			if strings.Contains(string(b), bad) {
				c.t.Errorf("%s output contains %q:\n    %s", p.name, bad, p.Tail(60))
			}
		}
	}
}
