package testkit

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Proc is one presenced process.
type Proc struct {
	name   string
	Cmd    *exec.Cmd
	API    *REST
	HTTP   string // PRESENCE_HTTP_ADDR
	Gossip string // PRESENCE_GOSSIP_ADDR
	Log    string // file with its output
	exited chan struct{}
}

// StartProc starts bin with env on top of a PRESENCE_*-free environment
// and a fresh PRESENCE_DATA_DIR; it is SIGKILLed when the test ends, and
// its last output is logged if the test failed.
func StartProc(t testing.TB, bin, name string, env map[string]string, tok *Tokens) *Proc {
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
	cmd.Env = append(cmd.Env, "PRESENCE_DATA_DIR="+dir)
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &Proc{name: name, Cmd: cmd, HTTP: env["PRESENCE_HTTP_ADDR"], Gossip: env["PRESENCE_GOSSIP_ADDR"],
		API: NewREST(env["PRESENCE_HTTP_ADDR"], tok), Log: logFile.Name(), exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("last output of %s:\n    %s", name, p.Tail(60))
		}
	})
	return p
}

// Name is the process's node name.
func (p *Proc) Name() string { return p.name }

// Addr is the process's HTTP address.
func (p *Proc) Addr() string { return p.HTTP }

// Exited is closed once the process has exited.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// HasExited reports whether the process has exited.
func (p *Proc) HasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// ExitCode is the exit code of an exited process.
func (p *Proc) ExitCode() int { return p.Cmd.ProcessState.ExitCode() }

// Kill SIGKILLs the process and waits for it to exit.
func (p *Proc) Kill() error {
	if err := p.Cmd.Process.Kill(); err != nil && !p.HasExited() {
		return err
	}
	<-p.exited
	return nil
}

// Term SIGTERMs the process and waits at most limit for it to exit; ok is
// false when it did not.
func (p *Proc) Term(limit time.Duration) (took time.Duration, ok bool, err error) {
	start := time.Now()
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return 0, false, err
	}
	select {
	case <-p.exited:
		return time.Since(start), true, nil
	case <-time.After(limit):
		return time.Since(start), false, nil
	}
}

// Output is everything the process wrote so far.
func (p *Proc) Output() string {
	b, _ := os.ReadFile(p.Log)
	return string(b)
}

// Tail returns the last n lines of the process's output, indented for
// failure messages.
func (p *Proc) Tail(n int) string {
	lines := strings.Split(strings.TrimRight(p.Output(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n    ")
}

// Pause freezes the process (SIGSTOP): it answers nothing, gossip
// included, as a host cut off the network would, until Resume.
func (p *Proc) Pause() error { return p.Cmd.Process.Signal(syscall.SIGSTOP) }

// Resume lets a paused process run again (SIGCONT).
func (p *Proc) Resume() error { return p.Cmd.Process.Signal(syscall.SIGCONT) }
