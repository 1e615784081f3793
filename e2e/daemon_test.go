package e2e

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/presence-cluster/presence/internal/testkit"
)

// daemon is one presenced process.
type daemon struct {
	cmd    *exec.Cmd
	base   string
	http   *http.Client
	exited chan struct{}
	mu     sync.Mutex
	out    bytes.Buffer
}

func (d *daemon) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.out.Write(p)
}

func (d *daemon) output() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.out.String()
}

// daemonEnv is the environment of a presenced process: this process's
// without any PRESENCE_* variable, plus env.
func daemonEnv(env map[string]string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PRESENCE_") {
			out = append(out, kv)
		}
	}
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// startDaemon runs presenced on dataDir, on loopback ports of its own
// (HTTP, gossip, remoting), and waits until /healthz answers.
func startDaemon(t *testing.T, bin, dataDir string) *daemon {
	t.Helper()
	httpAddr := testkit.FreeAddr(t)
	d := &daemon{base: "http://" + httpAddr, http: &http.Client{Timeout: 10 * time.Second}, exited: make(chan struct{})}
	d.cmd = exec.Command(bin)
	d.cmd.Env = daemonEnv(map[string]string{
		"PRESENCE_HTTP_ADDR":   httpAddr,
		"PRESENCE_DATA_DIR":    dataDir,
		"PRESENCE_JWT_SECRET":  testSecret,
		"PRESENCE_GOSSIP_ADDR": testkit.FreeAddr(t),
		"PRESENCE_REMOTE_ADDR": testkit.FreeAddr(t),
		"PRESENCE_NODE_NAME":   "e2e-daemon",
	})
	d.cmd.Stdout, d.cmd.Stderr = d, d
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start presenced: %v", err)
	}
	go func() {
		_ = d.cmd.Wait()
		close(d.exited)
	}()
	t.Cleanup(func() {
		d.http.CloseIdleConnections()
		select {
		case <-d.exited:
		default:
			_ = d.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-d.exited:
			case <-time.After(25 * time.Second):
				_ = d.cmd.Process.Kill()
				<-d.exited
			}
		}
		if t.Failed() {
			t.Logf("presenced output:\n%s", d.output())
		}
	})

	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-d.exited:
			t.Fatalf("presenced exited during startup (%v):\n%s", d.cmd.ProcessState, d.output())
		default:
		}
		res, err := d.http.Get(d.base + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return d
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("presenced not healthy after 20s (last error %v):\n%s", err, d.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill SIGKILLs the process and waits for it to be gone.
func (d *daemon) kill(t *testing.T) {
	t.Helper()
	d.http.CloseIdleConnections()
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL: %v", err)
	}
	select {
	case <-d.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("presenced still running 10s after SIGKILL")
	}
}

func (d *daemon) user(t *testing.T, id int64, name string) *client {
	return newClient(t, d.base, d.http, mint(t, id, name, false))
}

// TestDaemonDurableAcrossCrash: presenced writes state changes before it
// answers, so a SIGKILL loses none; the restarted process re-arms the
// stored busy expiry, which clears on time with no write request.
func TestDaemonDurableAcrossCrash(t *testing.T) {
	bin := testkit.BuildPresenced(t)
	dir := t.TempDir()

	d1 := startDaemon(t, bin, dir)
	u := d1.user(t, 7, "seven")
	u.heartbeat()
	until := micro(time.Now().Add(3 * time.Second))
	before := u.putStatus(`{"busy_until": "` + rfc3339(until) + `"}`)
	if !before.IsBusy || !before.IsOnline || !sameTime(before.BusyUntil, until) || nthOf(before) != 2 {
		t.Fatalf("before the crash: %+v, want online, busy until %s, version 2", before, rfc3339(until))
	}
	d1.kill(t)

	d2 := startDaemon(t, bin, dir)
	w := d2.user(t, 8, "watcher")
	if p := w.presence(7); time.Now().Before(until) {
		// Still before the expiry: the record is exactly as it was.
		if !p.IsBusy || !p.IsOnline || !sameTime(p.BusyUntil, until) || p.Version != before.Version || p.Username != "seven" {
			t.Fatalf("after the crash: %+v, want the record as it was (%+v)", p, before)
		}
	} else {
		t.Logf("restart took until after busy_until; checking the expired record only")
	}

	// Send nothing until well past the expiry, then look: the expiry must
	// have happened at busy_until, by the timer, not at this read.
	time.Sleep(time.Until(until.Add(1500 * time.Millisecond)))
	st := d2.user(t, 7, "seven").getStatus() // a read, not a write
	if st.IsBusy || st.BusyUntil != nil || st.Version != before.Version+1 || !st.IsOnline {
		t.Fatalf("after busy_until: %+v, want online, not busy, busy_until null, version %d", st, before.Version+1)
	}
	if lag := st.UpdatedAt.Sub(until); lag < 0 || lag > time.Second {
		t.Fatalf("busy cleared at %s, %v after busy_until %s; want within 1s of it", fmtTime(st.UpdatedAt), lag, rfc3339(until))
	}
	if !st.CreatedAt.Equal(*before.CreatedAt) {
		t.Errorf("created_at changed across the crash: %s -> %s", fmtTime(before.CreatedAt), fmtTime(st.CreatedAt))
	}
}

// TestRegression_DaemonStartFailureCrashes is a regression test (fixed): the user-visible side of
// TestRegression_StartFailurePanics. presenced with a configuration node.Start
// refuses (here PRESENCE_STORE=cassandra) should log "start failed" and
// exit with status 1; it panics with a nil pointer dereference in
// node.Start's deferred cleanup and exits with status 2.
func TestRegression_DaemonStartFailureCrashes(t *testing.T) {
	bin := testkit.BuildPresenced(t)
	cmd := exec.Command(bin)
	cmd.Env = daemonEnv(map[string]string{
		"PRESENCE_HTTP_ADDR":   testkit.FreeAddr(t),
		"PRESENCE_DATA_DIR":    t.TempDir(),
		"PRESENCE_JWT_SECRET":  testSecret,
		"PRESENCE_STORE":       "cassandra",
		"PRESENCE_STANDALONE":  "true",
		"PRESENCE_GOSSIP_ADDR": testkit.FreeAddr(t),
		"PRESENCE_REMOTE_ADDR": testkit.FreeAddr(t),
	})
	done := make(chan struct{})
	var out []byte
	var err error
	go func() {
		out, err = cmd.CombinedOutput()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("presenced with an unknown store still running after 20s:\n%s", out)
	}
	code := cmd.ProcessState.ExitCode()
	if code != 1 || strings.Contains(string(out), "panic:") || !strings.Contains(string(out), "start failed") {
		t.Fatalf("exit status %d (%v), want 1 with \"start failed\" and no panic; output:\n%s", code, err, lastLines(string(out), 20))
	}
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{"..."}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
