package loadgen

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/presence-cluster/presence/api/auth"
	"github.com/presence-cluster/presence/internal/loadgen/prom"
)

// WrkOptions are the settings of WriteWrkScripts.
type WrkOptions struct {
	// Dir receives the scripts (--wrk-scripts).
	Dir string
	// Classify is a node URL (--classify): its local and remote users get
	// separate scripts, presence-local.lua and presence-remote.lua.
	Classify string
	// ClassifyUsers are the users classified (--classify-users).
	ClassifyUsers int
	// Targets are the users the presence scripts read (--wrk-targets).
	Targets int
	// Warmup heartbeats every user once first, so reads find records
	// (--warmup).
	Warmup bool
}

// WriteWrkScripts writes Lua scripts for wrk: heartbeat, presence read and
// batch read, each rotating over the users' tokens (cfg.Topology.Users,
// minted with cfg's secret) with every request pre-formatted at thread
// start, so wrk's Lua costs the same per request against every server, the
// baseline included. The paths written, and what warm-up and
// classification found, go to out.
func WriteWrkScripts(cfg Config, o WrkOptions, out io.Writer) error {
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return err
	}
	t := cfg.Topology.resolved()
	toks, err := wrkTokens(cfg, t)
	if err != nil {
		return err
	}
	w := scriptWriter{dir: o.Dir, out: out, toks: toks}
	if err := w.writeCommon(t, o.Targets); err != nil {
		return err
	}
	node := cfg.URLs[0]
	if o.Classify != "" {
		node = o.Classify
	}
	if o.Warmup {
		if err := warmup(node, toks, t, out); err != nil {
			return err
		}
	}
	if o.Classify == "" {
		return nil
	}
	return w.writeClassified(o.Classify, o.ClassifyUsers, t)
}

// wrkTokens mints a day-long token per user.
func wrkTokens(cfg Config, t Topology) ([]string, error) {
	toks := make([]string, t.Users)
	for i := range toks {
		tok, err := auth.Mint(cfg.Secret, auth.MintClaims{UserID: t.userID(i), Username: "bench" + strconv.Itoa(i),
			TTL: 24 * time.Hour, Issuer: cfg.Issuer, Audience: cfg.Audience})
		if err != nil {
			return nil, fmt.Errorf("mint token of user %d: %w", t.userID(i), err)
		}
		toks[i] = tok
	}
	return toks, nil
}

// scriptWriter writes scripts into dir and their paths to out.
type scriptWriter struct {
	dir  string
	out  io.Writer
	toks []string
}

func (w scriptWriter) write(name, method string, path func(k int) string) error {
	p := filepath.Join(w.dir, name)
	if err := os.WriteFile(p, []byte(wrkScript(w.toks, method, path)), 0o644); err != nil {
		return err
	}
	fmt.Fprintln(w.out, p)
	return nil
}

// writeCommon writes heartbeat.lua, presence.lua (reads of the first
// targets users) and batch.lua (one batch of up to 50 of them).
func (w scriptWriter) writeCommon(t Topology, targets int) error {
	targets = max(1, min(targets, t.Users))
	ids := make([]int64, targets)
	for i := range ids {
		ids[i] = t.userID(i)
	}
	if err := w.write("heartbeat.lua", "POST", func(int) string { return "/users/me/heartbeat" }); err != nil {
		return err
	}
	if err := w.write("presence.lua", "GET", func(k int) string {
		return "/users/" + strconv.FormatInt(ids[k%len(ids)], 10) + "/presence"
	}); err != nil {
		return err
	}
	batch := make([]string, 0, 50)
	for i := 0; i < min(50, len(ids)); i++ {
		batch = append(batch, strconv.FormatInt(ids[i], 10))
	}
	return w.write("batch.lua", "GET", func(int) string {
		return "/users/presence?user_ids=" + strings.Join(batch, ",")
	})
}

// warmup gives every user a record (and an active actor): reads of users
// without one answer 404.
func warmup(node string, toks []string, t Topology, out io.Writer) error {
	c := &fasthttp.Client{NoDefaultUserAgentHeader: true}
	for i := range toks {
		if err := heartbeatOnce(c, node, toks[i]); err != nil {
			return fmt.Errorf("warm-up heartbeat of user %d via %s: %w", t.userID(i), node, err)
		}
	}
	fmt.Fprintf(out, "warmed up %d users via %s\n", len(toks), node)
	return nil
}

// writeClassified writes presence-local.lua and presence-remote.lua: reads
// of the users node owns and of those other members own.
func (w scriptWriter) writeClassified(node string, n int, t Topology) error {
	local, remote, err := classifyOwners(node, w.toks[:min(n, len(w.toks))], t)
	if err != nil {
		return err
	}
	fmt.Fprintf(w.out, "%s owns %d of %d users; %d are owned by other members\n", node, len(local), len(local)+len(remote), len(remote))
	for _, set := range []struct {
		name string
		ids  []int64
	}{{"presence-local.lua", local}, {"presence-remote.lua", remote}} {
		if len(set.ids) == 0 {
			return fmt.Errorf("no user found for %s", set.name)
		}
		ids := set.ids
		if err := w.write(set.name, "GET", func(k int) string {
			return "/users/" + strconv.FormatInt(ids[k%len(ids)], 10) + "/presence"
		}); err != nil {
			return err
		}
	}
	return nil
}

func heartbeatOnce(c *fasthttp.Client, node, tok string) error {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.SetRequestURI(node + "/users/me/heartbeat")
	req.Header.Set("Authorization", "Bearer "+tok)
	if err := c.DoTimeout(req, resp, 10*time.Second); err != nil {
		return err
	}
	if resp.StatusCode() != 200 {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode(), resp.Body())
	}
	return nil
}

// classifyOwners finds, for each user, whether node owns it: it sends a
// heartbeat through node and looks which of node's
// presence_actor_request_duration_seconds_count{owner=...} series moved.
func classifyOwners(node string, toks []string, t Topology) (local, remote []int64, err error) {
	c := &fasthttp.Client{NoDefaultUserAgentHeader: true}
	count := func() (float64, float64, error) {
		code, body, err := c.GetTimeout(nil, node+"/metrics", 10*time.Second)
		if err != nil {
			return 0, 0, err
		}
		if code != 200 {
			return 0, 0, fmt.Errorf("GET /metrics: HTTP %d", code)
		}
		s, err := prom.Parse(strings.NewReader(string(body)))
		if err != nil {
			return 0, 0, err
		}
		l, _ := s.Get("presence_actor_request_duration_seconds_count", "owner", "local")
		r, _ := s.Get("presence_actor_request_duration_seconds_count", "owner", "remote")
		return l, r, nil
	}
	l0, r0, err := count()
	if err != nil {
		return nil, nil, err
	}
	for i, tok := range toks {
		if err := heartbeatOnce(c, node, tok); err != nil {
			return nil, nil, err
		}
		l1, r1, err := count()
		if err != nil {
			return nil, nil, err
		}
		switch {
		case l1 > l0 && r1 == r0:
			local = append(local, t.userID(i))
		case r1 > r0 && l1 == l0:
			remote = append(remote, t.userID(i))
		}
		l0, r0 = l1, r1
	}
	return local, remote, nil
}

// wrkScript renders a wrk script whose k-th request is method path(k) as
// user k (mod the tokens). Requests are formatted once per thread, in
// init; request() only indexes, so the client's per-request cost is the
// same whatever the path.
func wrkScript(toks []string, method string, path func(k int) string) string {
	var b strings.Builder
	b.WriteString("-- generated by presencectl bench --wrk-scripts; tokens expire 24h after generation\n")
	b.WriteString("local tokens = {\n")
	for _, t := range toks {
		b.WriteString("  \"" + t + "\",\n")
	}
	b.WriteString("}\nlocal paths = {\n")
	for k := range toks {
		b.WriteString("  \"" + path(k) + "\",\n")
	}
	fmt.Fprintf(&b, `}
local method = %q
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
local reqs = {}
local i = 0
function init(args)
  for k = 1, #tokens do
    reqs[k] = wrk.format(method, paths[k], { ["Authorization"] = "Bearer " .. tokens[k] })
  end
  i = ((tid or 0) * 7919) %% #reqs
end
function request()
  i = i %% #reqs + 1
  return reqs[i]
end
`, method)
	return b.String()
}
