package clustere2e

// Multi-process test: three presenced processes form a cluster over
// loopback. Each process has one protoactor-go remote, so this file runs
// under -race as well.

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// buildPresenced builds cmd/presenced into a temporary directory.
func buildPresenced(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("go command not found: %v", err)
	}
	out, err := exec.Command(goBin, "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	bin := filepath.Join(t.TempDir(), "presenced")
	cmd := exec.Command(goBin, "build", "-o", bin, "./cmd/presenced")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/presenced: %v\n%s", err, b)
	}
	return bin
}

// proc is one presenced process.
type proc struct {
	name   string
	cmd    *exec.Cmd
	api    *rest
	http   string
	gossip string
	log    string // file with its output
	exited chan struct{}
}

func (p *proc) tail(n int) string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n    ")
}

// startProc starts presenced with env (on top of a clean PRESENCE_*-free
// environment); it is SIGKILLed when the test ends.
func startProc(t *testing.T, bin, name string, env map[string]string, tok *tokens) *proc {
	t.Helper()
	dir := t.TempDir()
	logFile, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PRESENCE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	env["PRESENCE_DATA_DIR"] = dir
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, http: env["PRESENCE_HTTP_ADDR"], gossip: env["PRESENCE_GOSSIP_ADDR"],
		api: newREST(env["PRESENCE_HTTP_ADDR"], tok), log: logFile.Name(), exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("last output of %s:\n    %s", name, p.tail(60))
		}
	})
	return p
}

// TestProcessesSurviveSIGKILL: three presenced processes (memory store
// each, shared JWT secret, seed lists) serve REST and WebSocket; one is
// SIGKILLed while users heartbeat every 200ms through the two others. The
// survivors keep answering for every user, the dead node's included: with
// a memory store its users' records die with it, and the next heartbeat
// creates them again on their new owner, so a GET after a heartbeat
// succeeds. Users that keep heartbeating stay online: their subscribers
// never see is_online false.
func TestProcessesSurviveSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs cmd/presenced")
	}
	const offlineAfter = 3 * time.Second
	bin := buildPresenced(t)
	tok := newTokens(t)

	type ports struct{ http, gossip, remote int }
	var pp [3]ports
	used := map[int]bool{}
	distinct := func() int {
		for {
			if p := freePort(t); !used[p] {
				used[p] = true
				return p
			}
		}
	}
	for i := range pp {
		pp[i] = ports{distinct(), distinct(), distinct()}
	}
	procs := make([]*proc, 3)
	for i := range procs {
		var seeds []string
		for j := range pp {
			if j != i {
				seeds = append(seeds, "127.0.0.1:"+strconv.Itoa(pp[j].gossip))
			}
		}
		name := fmt.Sprintf("p%d", i+1)
		procs[i] = startProc(t, bin, name, map[string]string{
			"PRESENCE_STANDALONE":       "false",
			"PRESENCE_STORE":            "memory",
			"PRESENCE_NODE_NAME":        name,
			"PRESENCE_HTTP_ADDR":        "127.0.0.1:" + strconv.Itoa(pp[i].http),
			"PRESENCE_GOSSIP_ADDR":      "127.0.0.1:" + strconv.Itoa(pp[i].gossip),
			"PRESENCE_REMOTE_ADDR":      "127.0.0.1:" + strconv.Itoa(pp[i].remote),
			"PRESENCE_SEEDS":            strings.Join(seeds, ","),
			"PRESENCE_JWT_SECRET":       testSecret,
			"PRESENCE_OFFLINE_AFTER":    offlineAfter.String(),
			"PRESENCE_DISCONNECT_GRACE": "2s",
			"PRESENCE_REJOIN_INTERVAL":  "2s",
		}, tok)
	}
	p1, p2, p3 := procs[0], procs[1], procs[2]

	// All three up and agreeing on three alive members.
	took := eventually(t, 30*time.Second, "three processes form a cluster", func() error {
		var views []string
		bad := false
		for _, p := range procs {
			select {
			case <-p.exited:
				t.Fatalf("%s exited:\n    %s", p.name, p.tail(40))
			default:
			}
			st, err := p.api.cluster()
			if err != nil {
				views = append(views, fmt.Sprintf("%s: %v", p.name, err))
				bad = true
				continue
			}
			views = append(views, fmt.Sprintf("%s (gossip %s) sees %s", p.name, p.gossip, st))
			if len(st.Members) != 3 || st.alive() != 3 {
				bad = true
			}
		}
		if bad {
			return fmt.Errorf("\n  %s", strings.Join(views, "\n  "))
		}
		return nil
	})
	t.Logf("cluster of 3 processes formed %v after the starts", took.Round(time.Millisecond))

	var users []int64
	for u := int64(3401); u <= 3412; u++ {
		users = append(users, u)
	}
	// REST through every process, for every user.
	for i, u := range users {
		p := procs[i%3]
		p.api.on(t).heartbeat(u)
		st := p.api.on(t).putStatus(u, `{"is_busy": true}`)
		if !st.IsBusy || !st.IsOnline {
			t.Fatalf("PUT through %s: %s", p.name, st)
		}
		st = procs[(i+1)%3].api.on(t).putStatus(u, `{"is_busy": false}`)
		if st.IsBusy || st.Version < 3 {
			t.Fatalf("PUT through %s: %s", procs[(i+1)%3].name, st)
		}
		for _, q := range procs {
			if got := q.api.on(t).presence(adminID, u); !samePresence(got, Presence{UserID: u, IsOnline: true, Version: st.Version}) {
				t.Fatalf("GET presence of %d through %s: %s, want %s", u, q.name, got, st)
			}
		}
	}
	if got := p2.api.on(t).batch(adminID, users); len(got) != len(users) {
		t.Fatalf("batch through p2: %d records, want %d", len(got), len(users))
	}
	h, err := func() (map[string]int64, error) {
		st, err := p1.api.cluster()
		if err != nil {
			return nil, err
		}
		out := map[string]int64{}
		for _, m := range st.Members {
			if m.ActorsHosted != nil {
				out[m.NodeName] = *m.ActorsHosted
			}
		}
		return out, nil
	}()
	if err != nil {
		t.Fatal(err)
	}
	if h["p3"] == 0 {
		t.Fatalf("p3 hosts no user (actors_hosted %v): the test needs users owned by the node it kills", h)
	}
	t.Logf("actors hosted before the kill: %v", h)

	subs := []*subscriber{
		mustDialWS(t, p1.http, tok, 8301, users),
		mustDialWS(t, p2.http, tok, 8302, users),
	}
	for _, s := range subs {
		if !s.waitFor(10*time.Second, func() bool {
			for _, u := range users {
				if p, ok := s.last(u); !ok || !p.IsOnline {
					return false
				}
			}
			return true
		}) {
			t.Fatalf("no online snapshot of every user:\n%s", s.dump(20))
		}
	}

	hb := startHeartbeats(users, []*rest{p1.api, p2.api}, 200*time.Millisecond)
	t.Cleanup(hb.halt)
	time.Sleep(500 * time.Millisecond) // heartbeats run (not an assertion)

	killed := time.Now()
	if err := p3.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p3.exited

	// Every user is answered again through both survivors (a heartbeat
	// re-creates the users p3 held).
	failover := eventually(t, 30*time.Second, "every user served by the survivors", func() error {
		for _, p := range []*proc{p1, p2} {
			for _, u := range users {
				got, err := p.api.presence(adminID, u)
				if err != nil {
					return fmt.Errorf("user %d through %s: %v", u, p.name, err)
				}
				if !got.IsOnline {
					return fmt.Errorf("user %d through %s: %s", u, p.name, got)
				}
			}
		}
		return nil
	})
	t.Logf("every user served through p1 and p2 %v after SIGKILL of p3", failover.Round(time.Millisecond))
	eventually(t, 30*time.Second, "survivors see 2 members", func() error {
		for _, p := range []*proc{p1, p2} {
			st, err := p.api.cluster()
			if err != nil {
				return err
			}
			if len(st.Members) != 2 || st.alive() != 2 {
				return fmt.Errorf("%s sees %s", p.name, st)
			}
		}
		return nil
	})
	t.Logf("survivors report 2 members %v after the kill", time.Since(killed).Round(time.Millisecond))

	// Keep heartbeating past offline_after (not an assertion), then check
	// that no subscriber ever saw a heartbeating user offline.
	time.Sleep(offlineAfter + time.Second)
	hb.halt()
	for _, s := range subs {
		for _, u := range users {
			for _, p := range s.updates(u) {
				if !p.IsOnline {
					t.Errorf("%s: heartbeating user %d pushed offline: %s at %s (kill at %s)", s.name, u, p,
						p.at.Format("15:04:05.000"), killed.Format("15:04:05.000"))
				}
			}
		}
	}
	hb.mu.Lock()
	var report bytes.Buffer
	for _, u := range users {
		fmt.Fprintf(&report, "\n  user %d: longest gap %v, %d failed heartbeats", u, hb.maxGap[u].Round(time.Millisecond), len(hb.failures[u]))
		for _, f := range hb.failures[u] {
			fmt.Fprintf(&report, "\n    %s", f)
		}
	}
	hb.mu.Unlock()
	t.Logf("heartbeats through the survivors:%s", report.String())
}
