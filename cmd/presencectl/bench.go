package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/presence-cluster/presence/internal/loadgen"
	"github.com/presence-cluster/presence/internal/loadgen/baseline"
)

// benchFlags are the flags of presencectl bench that are not fields of
// loadgen.Config: the lists still to split, the secret's sources, and the
// other modes of the command.
type benchFlags struct {
	urls, pprofURLs, pids string
	dataDir, secret       string
	jsonFile              string
	worker                bool
	serveBase             string
	serveFor              time.Duration
	serveFanout           string
	wrk                   loadgen.WrkOptions
	scenario              string
	storm                 loadgen.StormConfig
}

// runBench is presencectl bench: the load generator (loadgen.Run), or one
// of its helper modes: worker, baseline server, wrk scripts.
func runBench(args []string, stdout, stderr io.Writer) error {
	flags := newFlagSet("bench", "[--url URL[,URL...]] [--users N] [--sessions N] [--contacts K] [--heartbeat-rate R] [--change-rate R] [--duration D] [--ramp D] [--json FILE] [--scenario storm --drain-url URL --drain-pid PID]", stderr)
	cfg := loadgen.DefaultConfig()
	cfg.Log = stderr
	bf := defineBenchFlags(flags, &cfg)
	if err := parseFlags(flags, args); err != nil {
		return err
	}
	if bf.worker {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return loadgen.RunWorker(ctx, os.Stdin, stdout)
	}
	if bf.serveBase != "" {
		if err := loadgen.RequireLoopbackAddr(bf.serveBase); err != nil {
			return usageErrorf(flags, "--serve-baseline: %v", err)
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		fanout := baseline.QueuedWriters
		switch bf.serveFanout {
		case "queued":
		case "direct":
			fanout = baseline.DirectWrites
		default:
			return usageErrorf(flags, "--serve-fanout %q: want queued or direct", bf.serveFanout)
		}
		return baseline.Serve(ctx, bf.serveBase, fanout, min(bf.serveFor, time.Hour), stderr)
	}
	if err := bf.fill(flags, &cfg); err != nil {
		return err
	}
	if bf.wrk.Dir != "" {
		if bf.wrk.Classify != "" {
			if err := loadgen.RequireLoopbackURL(bf.wrk.Classify); err != nil {
				return usageErrorf(flags, "--classify: %v", err)
			}
		}
		bf.wrk.Classify = strings.TrimRight(bf.wrk.Classify, "/")
		return loadgen.WriteWrkScripts(cfg, bf.wrk, stdout)
	}
	return bench(cfg, bf.jsonFile, stdout)
}

// defineBenchFlags binds the flags to cfg's fields, with cfg's values as
// defaults, and returns the rest.
func defineBenchFlags(flags *flag.FlagSet, cfg *loadgen.Config) *benchFlags {
	bf := &benchFlags{}
	t := &cfg.Topology
	flags.StringVar(&bf.urls, "url", envOr("PRESENCE_URL", strings.Join(cfg.URLs, ",")), "comma-separated node `URLs` (loopback only); sessions and requests are spread over them")
	flags.StringVar(&bf.dataDir, "data-dir", envOr(envDataDir, "./data"), "daemon data `DIR` holding the generated secret")
	flags.StringVar(&bf.secret, "secret", "", "HS256 secret to mint the users' tokens with (else env "+envJWTSecret+", else the data dir's)")
	flags.StringVar(&cfg.Issuer, "issuer", envOr(envIssuer, ""), "iss claim of the minted tokens")
	flags.StringVar(&cfg.Audience, "audience", envOr(envAudience, ""), "aud claim of the minted tokens")
	flags.IntVar(&t.Users, "users", t.Users, "simulated users `N` (ids user-base .. user-base+N-1)")
	flags.Int64Var(&t.UserBase, "user-base", t.UserBase, "first user `ID`")
	flags.IntVar(&t.Sessions, "sessions", t.Sessions, "users holding one WebSocket session each (-1: all users)")
	flags.IntVar(&t.Contacts, "contacts", t.Contacts, "`K`: each session subscribes to the next K users (its contact list)")
	flags.IntVar(&t.Hot, "hot", t.Hot, "`H`: every session also subscribes to users 0..H-1, and changes go to those users only (fan-out test)")
	flags.BoolVar(&t.HiddenHot, "hot-hidden", t.HiddenHot, "the hot users hide their presence from everyone, and every other session has an admin token: half the subscribers are refused (they expect no frames)")
	flags.Float64Var(&cfg.HeartbeatRate, "heartbeat-rate", cfg.HeartbeatRate, "REST heartbeats per second, all users together")
	flags.Float64Var(&cfg.ChangeRate, "change-rate", cfg.ChangeRate, "status changes (PUT busy/available) per second")
	flags.Float64Var(&cfg.ReadRate, "read-rate", cfg.ReadRate, "single presence reads (GET /users/{id}/presence) per second")
	flags.Float64Var(&cfg.BatchRate, "batch-rate", cfg.BatchRate, "batch presence reads (GET /users/presence) per second")
	flags.IntVar(&cfg.BatchSize, "batch-size", cfg.BatchSize, "ids per batch read (at most 50)")
	flags.DurationVar(&cfg.Duration, "duration", cfg.Duration, "steady phase after the ramp")
	flags.DurationVar(&cfg.Ramp, "ramp", cfg.Ramp, "ramp-up: sessions open and REST rates rise linearly; changes start after it")
	flags.DurationVar(&cfg.Grace, "grace", cfg.Grace, "wait for deliveries after the last change")
	flags.DurationVar(&cfg.Progress, "progress", cfg.Progress, "progress line interval")
	flags.IntVar(&cfg.Workers, "workers", cfg.Workers, "worker processes holding the WebSocket sessions (-1: one per 5000 sessions; 0: in this process)")
	flags.IntVar(&cfg.SourceIPs, "source-ips", cfg.SourceIPs, "spread sessions over this many source addresses 127.0.0.10.. (0: 2 per worker)")
	flags.IntVar(&cfg.Conns, "conns", cfg.Conns, "REST keep-alive connections per node")
	flags.DurationVar(&cfg.HTTPTimeout, "http-timeout", cfg.HTTPTimeout, "REST request timeout")
	flags.StringVar(&bf.jsonFile, "json", "", "also write the summary as JSON to `FILE`")
	flags.StringVar(&bf.pprofURLs, "pprof-url", "", "comma-separated pprof base `URLs` of the nodes (PRESENCE_PPROF_ADDR), in --url order: memory is read from runtime.MemStats after a forced GC")
	flags.StringVar(&bf.pids, "pid", "", "comma-separated process `IDs` of the nodes, in --url order: RSS is read from /proc/PID/status")
	flags.IntVar(&cfg.DialConcurrency, "dial-concurrency", cfg.DialConcurrency, "WebSocket handshakes in flight per worker")
	flags.BoolVar(&cfg.NoReconnect, "no-reconnect", false, "sessions the server closes with 1012 or 1013 stay closed (default: reconnect after 0.25-1.25 s, like a client; counted as ws_reconnect)")
	flags.BoolVar(&cfg.Prewarm, "prewarm", false, "heartbeat every session user once before the first memory reading: per-session memory then excludes the user's actor and record")
	bf.storm = loadgen.DefaultStormConfig()
	flags.StringVar(&bf.scenario, "scenario", "", "`NAME`: \"storm\" drains --drain-url during the steady phase and measures the reconnect storm (see BENCHMARKS.md)")
	flags.StringVar(&bf.storm.DrainURL, "drain-url", "", "with --scenario storm: the node `URL` (one of --url) that drains")
	flags.IntVar(&bf.storm.DrainPID, "drain-pid", 0, "with --scenario storm: the `PID` of --drain-url's process, sent SIGTERM to drain it")
	flags.DurationVar(&bf.storm.DrainAfter, "drain-after", bf.storm.DrainAfter, "with --scenario storm: when the drain starts, into the steady phase")
	flags.IntVar(&bf.storm.DrainSessions, "drain-sessions", bf.storm.DrainSessions, "with --scenario storm: sessions connected to --drain-url first (-1: all); the others go to the other nodes")
	flags.DurationVar(&bf.storm.DisconnectGrace, "disconnect-grace", bf.storm.DisconnectGrace, "with --scenario storm: the nodes' PRESENCE_DISCONNECT_GRACE; users back within it must never be seen offline")
	flags.DurationVar(&bf.storm.Target, "storm-target", bf.storm.Target, "with --scenario storm: every cut-off session back and subscribed within this long of the drain")
	flags.BoolVar(&bf.worker, "worker", false, "internal: run as a worker fed on stdin")
	flags.StringVar(&bf.serveBase, "serve-baseline", "", "serve the bare Fiber baseline app on `ADDR` (loopback) instead of generating load")
	flags.DurationVar(&bf.serveFor, "serve-for", 10*time.Minute, "with --serve-baseline: stop after this long")
	flags.StringVar(&bf.serveFanout, "serve-fanout", "queued", "with --serve-baseline: `HOW` a change reaches the subscribers: \"queued\" (a writer goroutine per connection, the bare broadcast server) or \"direct\" (one send(2) per subscriber in a loop, the write floor)")
	flags.StringVar(&bf.wrk.Dir, "wrk-scripts", "", "write wrk Lua scripts (tokens of --users users) into `DIR` instead of generating load")
	flags.StringVar(&bf.wrk.Classify, "classify", "", "with --wrk-scripts: node `URL` whose local and remote users get separate scripts (cluster)")
	flags.IntVar(&bf.wrk.ClassifyUsers, "classify-users", 200, "with --classify: users to classify")
	flags.BoolVar(&bf.wrk.Warmup, "warmup", true, "with --wrk-scripts and --classify: heartbeat every user once so reads find records")
	flags.IntVar(&bf.wrk.Targets, "wrk-targets", 50, "with --wrk-scripts: users read by the presence scripts")
	return bf
}

// fill completes cfg with the list flags and the secret, and validates it:
// an invalid setting is a usage error.
func (bf *benchFlags) fill(flags *flag.FlagSet, cfg *loadgen.Config) error {
	cfg.URLs = splitURLs(bf.urls)
	switch bf.scenario {
	case "":
	case "storm":
		bf.storm.DrainURL = strings.TrimRight(strings.TrimSpace(bf.storm.DrainURL), "/")
		cfg.Storm = &bf.storm
	default:
		return usageErrorf(flags, "--scenario %q: want storm (or nothing)", bf.scenario)
	}
	cfg.PprofURLs = splitURLs(bf.pprofURLs)
	for p := range strings.SplitSeq(bf.pids, ",") {
		if p = strings.TrimSpace(p); p != "" {
			pid, err := strconv.Atoi(p)
			if err != nil || pid <= 0 {
				return usageErrorf(flags, "--pid %q: want a process id", p)
			}
			cfg.PIDs = append(cfg.PIDs, pid)
		}
	}
	if err := cfg.Validate(); err != nil {
		return usageErrorf(flags, "%v", err)
	}
	key, err := tokenSecret(bf.secret, bf.dataDir)
	if err != nil {
		return err
	}
	cfg.Secret = key
	return nil
}

// splitURLs splits a comma-separated list, dropping blanks and trailing
// slashes.
func splitURLs(list string) []string {
	var out []string
	for u := range strings.SplitSeq(list, ",") {
		if u = strings.TrimRight(strings.TrimSpace(u), "/"); u != "" {
			out = append(out, u)
		}
	}
	return out
}

// bench runs the generator until done or a signal, prints the summary and
// writes it as JSON to jsonFile if set.
func bench(cfg loadgen.Config, jsonFile string, stdout io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := loadgen.Run(ctx, cfg)
	if err != nil {
		return err
	}
	loadgen.WriteSummary(stdout, rep)
	if jsonFile != "" {
		if err := writeJSONReport(rep, jsonFile); err != nil {
			return err
		}
	}
	if rep.Storm != nil && !rep.Storm.Pass {
		return errors.New("storm: a check failed (see above)")
	}
	return nil
}

// writeJSONReport writes the report as indented JSON to file.
func writeJSONReport(rep *loadgen.Report, jsonFile string) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("encode summary: %w", err)
	}
	if err := os.WriteFile(jsonFile, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write summary: %w", err)
	}
	return nil
}
