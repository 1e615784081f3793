package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/presence-cluster/presence/internal/loadgen"
	"github.com/presence-cluster/presence/internal/loadgen/baseline"
	"github.com/presence-cluster/presence/internal/testkit"
)

// The generator's own tests are in internal/loadgen; these drive it
// through the command: flags, exit codes and the --json file.

func TestBenchRefusesNonLoopback(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"bench", "--url", "http://10.1.2.3:8000", "--secret", "s"}, &out, &errb)
	if code != 2 || !strings.Contains(errb.String(), "not a loopback address") {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	errb.Reset()
	code = run([]string{"bench", "--serve-baseline", "10.1.2.3:8100"}, &out, &errb)
	if code != 2 || !strings.Contains(errb.String(), "not a loopback address") {
		t.Fatalf("--serve-baseline: exit %d, stderr %q", code, errb.String())
	}
}

// Invalid settings are usage errors (exit 2) naming the flag, checked
// before any secret is looked for.
func TestBenchUsageErrors(t *testing.T) {
	clearEnv(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--users", "0"}, "--users must be"},
		{[]string{"--batch-size", "60"}, "--batch-size must be 1..50"},
		{[]string{"--pid", "abc"}, `--pid "abc": want a process id`},
		{[]string{"--url", ","}, "--url is required"},
		{[]string{"--workers", "65"}, "--workers must be at most 64"},
		{[]string{"--scenario", "flood"}, `--scenario "flood": want storm`},
		{[]string{"--serve-baseline", "127.0.0.1:0", "--serve-fanout", "fast"}, `--serve-fanout "fast": want queued or direct`},
		{[]string{"--scenario", "storm"}, "--scenario storm needs at least two --url"},
		{[]string{"--scenario", "storm", "--url", "http://127.0.0.1:1,http://127.0.0.1:2", "--no-reconnect"}, "--no-reconnect contradicts --scenario storm"},
		{[]string{"--scenario", "storm", "--url", "http://127.0.0.1:1,http://127.0.0.1:2", "--drain-url", "http://127.0.0.1:3"}, `--drain-url "http://127.0.0.1:3" must be one of --url`},
		{[]string{"--scenario", "storm", "--url", "http://127.0.0.1:1,http://127.0.0.1:2", "--drain-url", "http://127.0.0.1:2/"}, "--drain-pid is required"},
		{[]string{"--scenario", "storm", "--url", "http://127.0.0.1:1,http://127.0.0.1:2", "--drain-url", "http://127.0.0.1:2", "--drain-pid", "1", "--drain-after", "1m"}, "--drain-after must be in [0, --duration)"},
		{[]string{"--scenario", "storm", "--url", "http://127.0.0.1:1,http://127.0.0.1:2", "--drain-url", "http://127.0.0.1:2", "--drain-pid", "1", "--drain-sessions", "5000"}, "--drain-sessions must be"},
	} {
		var out, errb bytes.Buffer
		code := run(append([]string{"bench", "--data-dir", t.TempDir()}, tc.args...), &out, &errb)
		if code != 2 || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, code, errb.String(), tc.want)
		}
	}
}

// The fan-out command, unchanged, against the baseline: every session gets
// every change of the hot user, and the memory readings work.
func TestBenchAgainstBaseline(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the generator for 2 s")
	}
	addr := testkit.StartBaseline(t, baseline.QueuedWriters)
	sum := benchJSON(t, "--url", "http://"+addr, "--secret", "any-secret-0123456789abcdef", "--user-base", "5000000",
		"--users", "8", "--contacts", "0", "--hot", "1", "--workers", "0", "--source-ips", "2", "--prewarm",
		"--pprof-url", "http://"+addr,
		"--heartbeat-rate", "20", "--change-rate", "10", "--read-rate", "10", "--batch-rate", "2", "--batch-size", "5",
		"--ramp", "300ms", "--duration", "1500ms", "--grace", "2s", "--progress", "500ms") // a long grace: deliveries under a loaded race pass
	if sum.Sessions.Acked != 8 || sum.Sessions.Failed != 0 {
		t.Errorf("sessions: %+v", sum.Sessions)
	}
	d := sum.Delivery
	if d.Changes == 0 || d.Expected != 7*d.Changes || d.Received != d.Expected || d.Missing != 0 {
		t.Errorf("deliveries: %+v; want 7 per change, none missing", d)
	}
	for _, op := range []string{"heartbeat", "change", "read", "batch"} {
		if sum.Rates[op].OK == 0 || sum.Rates[op].Errors != 0 {
			t.Errorf("%s: %+v", op, sum.Rates[op])
		}
	}
	if len(sum.Errors) != 0 {
		t.Errorf("errors: %v", sum.Errors)
	}
	if len(sum.Memory) != 1 {
		t.Fatalf("memory: %+v", sum.Memory)
	}
	if m := sum.Memory[0]; m.MetricsError != "" || m.Error != "" || m.Source != "pprof" || m.SessionsFrom != "metrics" || m.SessionsDelta != 8 {
		t.Errorf("memory: %+v", m)
	}
}

// benchJSON runs presencectl bench with args and --json, fails the test on
// a non-zero exit, and returns the summary it wrote.
func benchJSON(t *testing.T, args ...string) loadgen.Report {
	t.Helper()
	jsonFile := filepath.Join(t.TempDir(), "bench.json")
	var out, errb bytes.Buffer
	code := run(append(append([]string{"bench"}, args...), "--json", jsonFile), &out, &errb)
	t.Logf("stdout:\n%s\nstderr:\n%s", out.String(), errb.String())
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	b, err := os.ReadFile(jsonFile)
	if err != nil {
		t.Fatal(err)
	}
	var sum loadgen.Report
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatal(err)
	}
	return sum
}
