package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/presence-cluster/presence/api/auth"
)

// baselineBody is what the baseline app answers to everything: a fixed
// JSON body the size of the heartbeat answer.
var baselineBody = []byte(`{"message":"Heartbeat received"}`)

// newBaselineApp is the bare Fiber app every HTTP figure is compared with:
// the server settings presenced uses (buffer sizes, limits, timeouts), no
// middleware, no authentication, no actor; every method and path gets the
// same small JSON body, so the same wrk script drives it and presenced.
// routes (the WebSocket baseline's) are registered before that catch-all.
func newBaselineApp(routes ...func(*fiber.App)) *fiber.App {
	app := fiber.New(fiber.Config{
		AppName:               "baseline",
		DisableStartupMessage: true,
		BodyLimit:             16 << 10,
		ReadBufferSize:        8 << 10,
		ReadTimeout:           10 * time.Second,
		WriteTimeout:          10 * time.Second,
		IdleTimeout:           120 * time.Second,
	})
	for _, r := range routes {
		r(app)
	}
	app.Use(func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		return c.Send(baselineBody)
	})
	return app
}

// serveBaseline serves the baseline app, with the WebSocket fan-out
// baseline (bench_baseline.go), on addr until a signal or for at most d.
func serveBaseline(addr string, d time.Duration, log io.Writer) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	hub := newBaselineHub()
	app := newBaselineApp(hub.routes)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- app.Listener(ln) }()
	fmt.Fprintf(log, "bench: baseline Fiber app on http://%s (for at most %s): fixed body for everything but "+
		"GET /ws/presence, PUT /users/me/status (WebSocket fan-out baseline), /metrics and /debug/pprof/\n", ln.Addr(), d)
	select {
	case err := <-served:
		hub.close(5 * time.Second)
		return err
	case <-ctx.Done():
	case <-time.After(d):
	}
	hub.close(5 * time.Second)
	fmt.Fprintf(log, "bench: baseline stopped: %s\n", hub)
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return app.ShutdownWithContext(sctx)
}

// writeWrkScripts writes Lua scripts for wrk: heartbeat, presence read and
// batch read, each rotating over the users' tokens with every request
// pre-formatted at thread start (so wrk's Lua costs the same per request
// against every server, the baseline included). With classify, the users
// are sorted by whether that node owns them, into presence-local.lua and
// presence-remote.lua.
func writeWrkScripts(o benchOptions, dir, classify string, classifyN, targets int, warmup bool, out io.Writer) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	n := o.Topo.Users
	toks := make([]string, n)
	for i := range toks {
		tok, err := auth.Mint(o.Secret, auth.MintClaims{UserID: o.Topo.userID(i), Username: "bench" + strconv.Itoa(i),
			TTL: 24 * time.Hour, Issuer: o.Issuer, Audience: o.Audience})
		if err != nil {
			return err
		}
		toks[i] = tok
	}
	targets = max(1, min(targets, n))
	ids := make([]int64, targets)
	for i := range ids {
		ids[i] = o.Topo.userID(i)
	}
	write := func(name, body string) error {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			return err
		}
		fmt.Fprintln(out, p)
		return nil
	}
	if err := write("heartbeat.lua", wrkScript(toks, "POST", func(int) string { return "/users/me/heartbeat" })); err != nil {
		return err
	}
	if err := write("presence.lua", wrkScript(toks, "GET", func(k int) string {
		return "/users/" + strconv.FormatInt(ids[k%len(ids)], 10) + "/presence"
	})); err != nil {
		return err
	}
	batch := make([]string, 0, 50)
	for i := 0; i < min(50, len(ids)); i++ {
		batch = append(batch, strconv.FormatInt(ids[i], 10))
	}
	if err := write("batch.lua", wrkScript(toks, "GET", func(int) string {
		return "/users/presence?user_ids=" + strings.Join(batch, ",")
	})); err != nil {
		return err
	}

	node := o.URLs[0]
	if classify != "" {
		node = classify
	}
	if warmup {
		// Reads of users without a record answer 404: give every user a
		// record (and an active actor) first.
		c := &fasthttp.Client{NoDefaultUserAgentHeader: true}
		for i := 0; i < n; i++ {
			if err := heartbeatOnce(c, node, toks[i]); err != nil {
				return fmt.Errorf("warm-up heartbeat of user %d via %s: %w", o.Topo.userID(i), node, err)
			}
		}
		fmt.Fprintf(out, "warmed up %d users via %s\n", n, node)
	}
	if classify == "" {
		return nil
	}
	local, remote, err := classifyOwners(classify, toks[:min(classifyN, n)], o.Topo)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%s owns %d of %d users; %d are owned by other members\n", classify, len(local), len(local)+len(remote), len(remote))
	for _, set := range []struct {
		name string
		ids  []int64
	}{{"presence-local.lua", local}, {"presence-remote.lua", remote}} {
		if len(set.ids) == 0 {
			return fmt.Errorf("no user found for %s", set.name)
		}
		ids := set.ids
		if err := write(set.name, wrkScript(toks, "GET", func(k int) string {
			return "/users/" + strconv.FormatInt(ids[k%len(ids)], 10) + "/presence"
		})); err != nil {
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
func classifyOwners(node string, toks []string, t topology) (local, remote []int64, err error) {
	c := &fasthttp.Client{NoDefaultUserAgentHeader: true}
	count := func() (float64, float64, error) {
		code, body, err := c.GetTimeout(nil, node+"/metrics", 10*time.Second)
		if err != nil {
			return 0, 0, err
		}
		if code != 200 {
			return 0, 0, fmt.Errorf("GET /metrics: HTTP %d", code)
		}
		s, err := parseProm(strings.NewReader(string(body)))
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
