//go:build containers

package containers

// The harness: Docker Compose around the deploy files, and clients that
// reach the nodes only through their published loopback ports.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/jackc/pgx/v5"

	"github.com/presence-cluster/presence/internal/testkit"
)

// nodes are the compose services, in order.
var nodes = []string{"node1", "node2", "node3"}

// adminID is the subject of admin tokens; never a traffic user.
const adminID = testkit.AdminID

const project = "presencect"

// cluster is one running compose project.
type cluster struct {
	t       *testing.T
	root    string   // repository root
	compose []string // docker-compose or docker compose, with -p and -f flags
	env     []string
	netPfx  string         // gossip network /24 prefix, e.g. 172.29.240
	ports   map[string]int // node -> published HTTP port
	secret  []byte
	tok     *testkit.Tokens
	rests   map[string]*testkit.REST
}

// startCluster brings up a fresh three-node cluster and waits until every
// node is ready and sees the other two.
func startCluster(t *testing.T) *cluster {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	store := os.Getenv("PRESENCE_STORE")
	hostStore := os.Getenv("PRESENCE_CT_HOST_STORE")
	if !strings.HasPrefix(store, "postgres") || !strings.HasPrefix(hostStore, "postgres") {
		t.Fatal(`PRESENCE_STORE and PRESENCE_CT_HOST_STORE must name the host's PostgreSQL: run "make test-containers", or eval "$(bash deploy/host-postgres.sh)" first`)
	}
	if _, err := exec.LookPath("docker"); err != nil {
		t.Fatal("docker is not installed")
	}
	image := envOr("PRESENCE_CT_IMAGE", "presence:dev")
	if out, err := exec.Command("docker", "image", "inspect", image).CombinedOutput(); err != nil {
		t.Fatalf("image %s: %v: %s (make image builds it)", image, err, firstLine(out))
	}

	c := &cluster{
		t:      t,
		root:   root,
		ports:  map[string]int{},
		secret: []byte("containers-e2e-secret-" + randomB64(12)),
		rests:  map[string]*testkit.REST{},
	}
	c.tok = testkit.NewTokens(c.secret)
	c.compose = composeCommand(t)
	for _, f := range []string{"deploy/docker-compose.yml", "deploy/docker-compose.host-postgres.yml", "e2e/containers/testdata/compose.test.yml"} {
		c.compose = append(c.compose, "-f", filepath.Join(root, f))
	}
	c.compose = append(c.compose, "-p", project)

	// Leftovers of an interrupted run go first (they hold the network).
	c.env = c.baseEnv(image, store, "0.0.0")
	_, _ = c.run(2*time.Minute, "down", "-v", "--remove-orphans", "-t", "1")
	c.netPfx = pickNet(t)
	for _, n := range nodes {
		c.ports[n] = testkit.FreePort(t)
		c.rests[n] = testkit.NewREST(c.addr(n), c.tok)
	}
	c.env = c.baseEnv(image, store, c.netPfx)
	for i, n := range nodes {
		c.env = append(c.env, fmt.Sprintf("PRESENCE_NODE%d_PORT=%d", i+1, c.ports[n]))
	}
	resetDatabase(t, hostStore)

	t.Cleanup(func() {
		c.saveLogs()
		if os.Getenv("PRESENCE_CT_KEEP") == "1" {
			t.Logf("PRESENCE_CT_KEEP=1: cluster %s left running, ports %v", project, c.ports)
			return
		}
		if out, err := c.run(2*time.Minute, "down", "-v", "--remove-orphans", "-t", "5"); err != nil {
			t.Logf("compose down: %v\n%s", err, out)
		}
	})
	start := time.Now()
	if out, err := c.run(3*time.Minute, "up", "-d"); err != nil {
		t.Fatalf("compose up: %v\n%s", err, out)
	}
	c.waitSettled(90*time.Second, nodes)
	t.Logf("cluster up in %v: gossip net %s.0/24, HTTP ports %v", time.Since(start).Round(10*time.Millisecond), c.netPfx, c.ports)
	return c
}

func (c *cluster) baseEnv(image, store, net string) []string {
	env := os.Environ()
	return append(env,
		"PRESENCE_IMAGE="+image,
		"PRESENCE_STORE="+store,
		"PRESENCE_JWT_SECRET="+string(c.secret),
		"PRESENCE_GOSSIP_KEY="+randomB64(32),
		"PRESENCE_CT_NET="+net,
		"PRESENCE_CT_DEFAULT_NET="+pickDefaultNet(c.t),
		"COMPOSE_INTERACTIVE_NO_CLI=1",
	)
}

// composeCommand prefers docker-compose (v1, Debian's package) and falls
// back to the `docker compose` plugin.
func composeCommand(t *testing.T) []string {
	if p, err := exec.LookPath("docker-compose"); err == nil {
		return []string{p}
	}
	if err := exec.Command("docker", "compose", "version").Run(); err == nil {
		return []string{"docker", "compose"}
	}
	t.Fatal("neither docker-compose nor the docker compose plugin is installed")
	return nil
}

// run runs compose with args; it returns the combined output.
func (c *cluster) run(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	argv := append(append([]string{}, c.compose...), args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = c.root
	cmd.Env = c.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// docker runs a docker command and fails the test on error.
func (c *cluster) docker(args ...string) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	if err != nil {
		c.t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// container is the id of a node's container.
func (c *cluster) container(node string) string {
	c.t.Helper()
	out, err := c.run(time.Minute, "ps", "-q", node)
	id := strings.TrimSpace(lastLine(out))
	if err != nil || id == "" {
		c.t.Fatalf("container of %s: %v: %s", node, err, out)
	}
	return id
}

// gossipNet is the name of the test's gossip network.
func (c *cluster) gossipNet() string { return project + "_gossip" }

// gossipIP is a node's fixed address on the gossip network.
func (c *cluster) gossipIP(node string) string {
	for i, n := range nodes {
		if n == node {
			return fmt.Sprintf("%s.%d", c.netPfx, 11+i)
		}
	}
	c.t.Fatalf("no node %s", node)
	return ""
}

// addr is a node's published HTTP address.
func (c *cluster) addr(node string) string { return "127.0.0.1:" + strconv.Itoa(c.ports[node]) }

// logs returns the last n lines of the nodes' logs.
func (c *cluster) logs(n int) string {
	out, _ := c.run(time.Minute, "logs", "--no-color", "--tail", strconv.Itoa(n), "node1", "node2", "node3")
	return out
}

func (c *cluster) saveLogs() {
	out, _ := c.run(time.Minute, "logs", "--no-color", "-t", "node1", "node2", "node3")
	dir := filepath.Join(c.root, "deploy", ".build")
	if err := os.MkdirAll(dir, 0o755); err == nil {
		p := filepath.Join(dir, "containers-logs.txt")
		if err := os.WriteFile(p, []byte(out), 0o644); err == nil {
			c.t.Logf("node logs: %s", p)
		}
	}
	if c.t.Failed() {
		lines := strings.Split(out, "\n")
		var keep []string
		for _, l := range lines {
			if !strings.Contains(l, "lib=protoactor") {
				keep = append(keep, l)
			}
		}
		// Short: what CI shows of a run is its end, and the failures are
		// above; the whole log is in the file.
		if len(keep) > 40 {
			keep = keep[len(keep)-40:]
		}
		c.t.Logf("last node log lines (protoactor lines left out):\n%s", strings.Join(keep, "\n"))
	}
}

// ready reports whether a node answers /readyz with 200.
func (c *cluster) ready(node string) bool {
	cl := &http.Client{Timeout: 2 * time.Second}
	res, err := cl.Get("http://" + c.addr(node) + "/readyz")
	if err != nil {
		return false
	}
	res.Body.Close()
	return res.StatusCode == http.StatusOK
}

// view is the set of alive, owning, not draining members a node sees, by
// node name, sorted.
func (c *cluster) view(node string) ([]string, error) {
	var cs testkit.ClusterStatus
	if err := c.call(node, adminID, http.MethodGet, "/admin/cluster", "", &cs); err != nil {
		return nil, err
	}
	var names []string
	for _, m := range cs.Members {
		if m.Status == "alive" && m.Owner && !m.Draining {
			names = append(names, m.NodeName)
		}
	}
	sort.Strings(names)
	return names, nil
}

// pollView polls until each of askers sees exactly want; it returns how
// long that took, or the last mismatch when timeout runs out.
func (c *cluster) pollView(timeout time.Duration, askers, want []string) (time.Duration, error) {
	w := append([]string(nil), want...)
	sort.Strings(w)
	return testkit.Poll(timeout, 200*time.Millisecond, func() error {
		for _, n := range askers {
			v, err := c.view(n)
			if err != nil {
				return fmt.Errorf("%s: %w", n, err)
			}
			if strings.Join(v, ",") != strings.Join(w, ",") {
				return fmt.Errorf("%s sees %v, want %v", n, v, w)
			}
		}
		return nil
	})
}

// waitView waits until each of askers sees exactly want; it returns how long
// that took.
func (c *cluster) waitView(timeout time.Duration, askers, want []string) time.Duration {
	c.t.Helper()
	d, err := c.pollView(timeout, askers, want)
	if err != nil {
		c.t.Fatalf("membership: %v (after %v)", err, d)
	}
	return d
}

// waitViewNoFatal is waitView that returns -1 instead of failing.
func (c *cluster) waitViewNoFatal(timeout time.Duration, askers, want []string) time.Duration {
	d, err := c.pollView(timeout, askers, want)
	if err != nil {
		return -1
	}
	return d
}

// waitSettled waits until every node in want is ready and sees exactly want.
func (c *cluster) waitSettled(timeout time.Duration, want []string) time.Duration {
	c.t.Helper()
	start := time.Now()
	if d, err := testkit.Poll(timeout, 200*time.Millisecond, func() error {
		for _, n := range want {
			if !c.ready(n) {
				return fmt.Errorf("%s not ready", n)
			}
		}
		return nil
	}); err != nil {
		c.t.Fatalf("readiness: %v after %v\n%s", err, d, c.logs(40))
	}
	c.waitView(timeout-time.Since(start), want, want)
	return time.Since(start)
}

// health is the Docker health status of a node's container.
func (c *cluster) health(node string) string {
	return c.docker("inspect", "-f", "{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}", c.container(node))
}

// ---------------------------------------------------------------- REST

// The API's JSON bodies.
type (
	Status   = testkit.Status
	Presence = testkit.Presence
)

// sameState compares what a client sees, version included.
func sameState(a, b Presence) bool { return testkit.SamePresence(a, b) }

// call sends one request to a node as user uid and decodes a 2xx body.
func (c *cluster) call(node string, uid int64, method, path, body string, out any) error {
	return c.callTimeout(node, uid, method, path, body, out, 0)
}

func (c *cluster) callTimeout(node string, uid int64, method, path, body string, out any, timeout time.Duration) error {
	ctx := context.Background()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	return c.rests[node].CallContext(ctx, uid, method, path, body, out)
}

var errWrongUser = testkit.ErrWrongUser

func (c *cluster) putStatus(node string, uid int64, body string) (Status, error) {
	return c.rests[node].PutOwn(uid, body)
}

func (c *cluster) heartbeat(node string, uid int64) error {
	return c.call(node, uid, http.MethodPost, "/users/me/heartbeat", "", nil)
}

func (c *cluster) presence(node string, asker, id int64) (Presence, error) {
	return c.presenceTimeout(node, asker, id, 0)
}

func (c *cluster) presenceTimeout(node string, asker, id int64, timeout time.Duration) (Presence, error) {
	ctx := context.Background()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	return c.rests[node].PresenceOf(ctx, asker, id)
}

// mustPut is putStatus that fails the test.
func (c *cluster) mustPut(node string, uid int64, body string) Status {
	c.t.Helper()
	s, err := c.putStatus(node, uid, body)
	if err != nil {
		c.t.Fatalf("PUT status of %d via %s (%s): %v", uid, node, body, err)
	}
	return s
}

// errKind classifies a client error for the counts the tests report.
func errKind(err error) string { return testkit.ErrorKind(err) }

// ---------------------------------------------------------------- WebSocket

// wsConn is one WebSocket session; every presence_update goes to the
// onUpdate given to dialWS.
type wsConn struct{ *testkit.WSConn }

var wsDialer = &websocket.Dialer{HandshakeTimeout: 5 * time.Second}

// dialWS connects to node as uid, subscribed to ids at connect.
func (c *cluster) dialWS(node string, uid int64, ids []int64, onUpdate func(Presence)) (*wsConn, error) {
	q := testkit.WSQuery(c.tok.Of(uid), testkit.JoinIDs(ids, false))
	w, err := testkit.DialWS(c.addr(node), q, testkit.WSOptions{
		Name: fmt.Sprintf("ws %s as %d", node, uid), Dialer: wsDialer, OnUpdate: onUpdate,
	})
	if err != nil {
		return nil, err
	}
	return &wsConn{w}, nil
}

func (w *wsConn) closeCode() int { return w.CloseCode() }

func (w *wsConn) close() { w.Close() }

// watcher keeps the newest pushed state per user, across reconnects.
type watcher struct {
	mu      sync.Mutex
	latest  map[int64]Presence
	history map[int64][]Presence
	changed chan struct{}
}

func newWatcher() *watcher {
	return &watcher{latest: map[int64]Presence{}, history: map[int64][]Presence{}, changed: make(chan struct{}, 1)}
}

func (w *watcher) add(p Presence) {
	w.mu.Lock()
	w.history[p.UserID] = append(w.history[p.UserID], p)
	if p.Version >= w.latest[p.UserID].Version {
		w.latest[p.UserID] = p
	}
	w.mu.Unlock()
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

func (w *watcher) last(id int64) (Presence, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	p, ok := w.latest[id]
	return p, ok
}

func (w *watcher) updates(id int64) []Presence {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Presence(nil), w.history[id]...)
}

// ---------------------------------------------------------------- helpers

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func randomB64(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// pickNet chooses the /24 of the gossip network: PRESENCE_CT_NET, or the
// first of 172.29.240-249 that overlaps no existing Docker network.
func pickNet(t *testing.T) string {
	if v := os.Getenv("PRESENCE_CT_NET"); v != "" {
		return v
	}
	return freeNet(t, "172.29", usedNets(t))
}

// pickDefaultNet chooses the /24 of the compose project's default network
// the same way, from 172.28.240-249. It is pinned too: left to Docker, it
// takes the next free /16 of Docker's pool, which can be 172.29.0.0/16 and
// then overlaps the gossip network ("Pool overlaps with other one").
func pickDefaultNet(t *testing.T) string {
	if v := os.Getenv("PRESENCE_CT_DEFAULT_NET"); v != "" {
		return v
	}
	return freeNet(t, "172.28", usedNets(t))
}

func usedNets(t *testing.T) []*net.IPNet {
	out, err := exec.Command("docker", "network", "ls", "-q").Output()
	if err != nil {
		t.Fatalf("docker network ls: %v", err)
	}
	var used []*net.IPNet
	for _, id := range strings.Fields(string(out)) {
		sub, _ := exec.Command("docker", "network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}} {{end}}", id).Output()
		for _, s := range strings.Fields(string(sub)) {
			if _, n, err := net.ParseCIDR(s); err == nil {
				used = append(used, n)
			}
		}
	}
	return used
}

func freeNet(t *testing.T, base string, used []*net.IPNet) string {
	for i := 240; i < 250; i++ {
		pfx := fmt.Sprintf("%s.%d", base, i)
		_, mine, _ := net.ParseCIDR(pfx + ".0/24")
		free := true
		for _, n := range used {
			if n.Contains(mine.IP) || mine.Contains(n.IP) {
				free = false
				break
			}
		}
		if free {
			return pfx
		}
	}
	t.Fatalf("no free /24 in %s.240-249 for a test network; set PRESENCE_CT_NET / PRESENCE_CT_DEFAULT_NET", base)
	return ""
}

// resetDatabase empties the presence table so every run starts clean.
func resetDatabase(t *testing.T, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect to %s from the host: %v", redact(url), err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "TRUNCATE presence_users"); err != nil && !strings.Contains(err.Error(), "42P01") {
		t.Fatalf("empty presence_users: %v", err)
	}
}

func redact(u string) string {
	if p, err := url.Parse(u); err == nil {
		return p.Redacted()
	}
	return "(url)"
}

func firstLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// pct returns the p-th percentile of ds (p in 0..100).
func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}

func secs(d time.Duration) string { return fmt.Sprintf("%.1fs", d.Seconds()) }

// counts is a concurrency-safe counter by kind.
type counts struct {
	mu sync.Mutex
	m  map[string]int
}

func (c *counts) add(kind string) {
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]int{}
	}
	c.m[kind]++
	c.mu.Unlock()
}

func (c *counts) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.m {
		n += v
	}
	return n
}

func (c *counts) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(c.m))
	for k := range c.m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s=%d", k, c.m[k])
	}
	return b.String()
}
