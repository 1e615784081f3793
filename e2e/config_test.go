package e2e

// The daemon's command line: configuration mistakes are refused with exit
// status 2 and the variable named, -version and -h exit 0, and a default
// start opens only its HTTP port beyond loopback.

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/presence-cluster/presence/internal/testkit"
)

// runDaemon runs presenced with args and env (no other PRESENCE_*
// variable) and returns its exit status and output; it must exit within
// 20 s.
func runDaemon(t *testing.T, bin string, env map[string]string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = daemonEnv(env)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	_ = cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("presenced %v still running after 20s:\n%s", args, out.String())
	}
	return cmd.ProcessState.ExitCode(), out.String()
}

func TestDaemonRefusesConfigurationMistakes(t *testing.T) {
	bin := testkit.BuildPresenced(t)
	base := func(kv ...string) map[string]string {
		env := map[string]string{"PRESENCE_HTTP_ADDR": testkit.FreeAddr(t), "PRESENCE_DATA_DIR": t.TempDir(),
			"PRESENCE_STORE": "memory", "PRESENCE_JWT_SECRET": testSecret}
		for i := 0; i < len(kv); i += 2 {
			env[kv[i]] = kv[i+1]
		}
		return env
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		want []string // in the output
	}{
		{"negative offline_after", base("PRESENCE_OFFLINE_AFTER", "-5s"), []string{"PRESENCE_OFFLINE_AFTER"}},
		{"negative disconnect grace", base("PRESENCE_DISCONNECT_GRACE", "-1s"), []string{"PRESENCE_DISCONNECT_GRACE"}},
		{"zero request timeout", base("PRESENCE_REQUEST_TIMEOUT", "0s"), []string{"PRESENCE_REQUEST_TIMEOUT"}},
		{"5-byte HS256 secret", base("PRESENCE_JWT_SECRET", "short"), []string{"PRESENCE_JWT_SECRET", "32 bytes"}},
		{"frame size out of range", base("PRESENCE_WS_MAX_FRAME", "1GiB"), []string{"PRESENCE_WS_MAX_FRAME"}},
		{"body limit zero", base("PRESENCE_BODY_LIMIT", "0"), []string{"PRESENCE_BODY_LIMIT"}},
		{"bad gossip key", base("PRESENCE_GOSSIP_KEY", "bm90LWEta2V5"), []string{"PRESENCE_GOSSIP_KEY"}},
		{"exposed cluster without key or TLS", base("PRESENCE_SEEDS", "127.0.0.1:1"),
			[]string{"PRESENCE_GOSSIP_KEY", "PRESENCE_REMOTE_TLS_CERT", "PRESENCE_INSECURE_CLUSTER"}},
		{"exposed remoting without key or TLS", base("PRESENCE_REMOTE_ADDR", "0.0.0.0:0"),
			[]string{"PRESENCE_GOSSIP_KEY", "PRESENCE_REMOTE_TLS_CERT"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := runDaemon(t, bin, tc.env)
			if code != 2 {
				t.Fatalf("exit status %d, want 2; output:\n%s", code, lastLines(out, 20))
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output does not name %s:\n%s", w, lastLines(out, 10))
				}
			}
		})
	}
}

func TestDaemonVersionAndHelp(t *testing.T) {
	bin := testkit.BuildPresenced(t)
	code, out := runDaemon(t, bin, nil, "-version")
	if code != 0 || !strings.HasPrefix(out, "presenced ") || strings.Count(out, "\n") != 1 {
		t.Fatalf("-version: exit %d, output %q", code, out)
	}
	code, out = runDaemon(t, bin, nil, "-h")
	if code != 0 || !strings.Contains(out, "-offline-after duration") || !strings.Contains(out, "default 5m0s") {
		t.Fatalf("-h: exit %d, output:\n%s", code, out)
	}
}

// A default start (no cluster setting) listens beyond loopback only on its
// HTTP port: gossip and remoting are on 127.0.0.1.
func TestDaemonDefaultStartOpensOnlyHTTP(t *testing.T) {
	for _, a := range []string{"127.0.0.1:7946", "127.0.0.1:8090"} {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			t.Skipf("%s is in use on this machine (another node?): a default start needs it", a)
		}
		ln.Close()
	}
	bin := testkit.BuildPresenced(t)
	p, httpPort := startOnAnyPort(t, bin)
	addrs, err := testkit.ListeningTCP(p.Cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("listening: %v", addrs)
	exposed := 0
	for _, a := range addrs {
		host, port, _ := net.SplitHostPort(a)
		if net.ParseIP(host).IsLoopback() {
			continue
		}
		if ":"+port != httpPort {
			t.Errorf("%s listens beyond loopback; only HTTP (%s) may", a, httpPort)
		}
		exposed++
	}
	if exposed != 1 || len(addrs) != 3 {
		t.Errorf("want HTTP beyond loopback and gossip+remoting on loopback, got %v", addrs)
	}
}

// startOnAnyPort starts a default node with its HTTP port on every
// interface (":port") and waits for /healthz. A port free on loopback a
// moment ago may be taken on the wildcard address by then (an outgoing
// connection of another test uses it as its local port): such a start
// fails with "address already in use", and is tried again on another port.
func startOnAnyPort(t *testing.T, bin string) (*testkit.Proc, string) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		httpPort := strings.TrimPrefix(testkit.FreeAddr(t), "127.0.0.1")
		p := testkit.StartProc(t, bin, "default", map[string]string{"PRESENCE_HTTP_ADDR": httpPort, "PRESENCE_STORE": "memory"}, nil)
		var taken bool
		testkit.Eventually(t, 20*time.Second, "the node answers /healthz", func() error {
			if p.HasExited() && strings.Contains(p.Output(), "address already in use") {
				taken = true
				return nil
			}
			res, err := http.Get("http://127.0.0.1" + httpPort + "/healthz")
			if err != nil {
				return err
			}
			res.Body.Close()
			return nil
		})
		if !taken {
			return p, httpPort
		}
		if attempt == 3 {
			t.Fatalf("no free HTTP port in %d attempts", attempt)
		}
		t.Logf("port %s was taken meanwhile; trying another", httpPort)
	}
}

// PRESENCE_INSECURE_CLUSTER=true starts an exposed cluster node without
// key or TLS, and says so in the log at start.
func TestDaemonInsecureClusterWarns(t *testing.T) {
	bin := testkit.BuildPresenced(t)
	ports := testkit.FreePorts(t, 3)
	httpAddr := "127.0.0.1:" + strconv.Itoa(ports[0])
	p := testkit.StartProc(t, bin, "insecure", map[string]string{
		"PRESENCE_HTTP_ADDR":        httpAddr,
		"PRESENCE_GOSSIP_ADDR":      "0.0.0.0:" + strconv.Itoa(ports[1]),
		"PRESENCE_GOSSIP_ADVERTISE": "127.0.0.1:" + strconv.Itoa(ports[1]),
		"PRESENCE_REMOTE_ADDR":      "0.0.0.0:" + strconv.Itoa(ports[2]),
		"PRESENCE_STORE":            "memory",
		"PRESENCE_JWT_SECRET":       testSecret,
		"PRESENCE_INSECURE_CLUSTER": "true",
	}, nil)
	testkit.Eventually(t, 20*time.Second, "the insecure node answers /healthz", func() error {
		if p.HasExited() {
			t.Fatalf("exited:\n%s", p.Tail(20))
		}
		res, err := http.Get("http://" + httpAddr + "/healthz")
		if err != nil {
			return err
		}
		res.Body.Close()
		return nil
	})
	if tail := p.Tail(200); !strings.Contains(tail, "INSECURE CLUSTER") || !strings.Contains(tail, "level=WARN") {
		t.Fatalf("no warning in the log:\n%s", tail)
	}
}
