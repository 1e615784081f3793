package testkit

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var build struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

// BuildPresenced builds cmd/presenced once per test binary and returns the
// binary's path. The binary lives until Main removes it.
func BuildPresenced(t testing.TB) string {
	t.Helper()
	build.once.Do(func() { build.bin, build.err = buildPresenced() })
	if build.err != nil {
		t.Fatalf("%v", build.err)
	}
	return build.bin
}

func buildPresenced() (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("the go command is needed to build presenced: %w", err)
	}
	out, err := exec.Command(goBin, "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("go env GOMOD: %q %v", gomod, err)
	}
	build.dir, err = os.MkdirTemp("", "presenced-e2e-")
	if err != nil {
		return "", fmt.Errorf("temp dir for presenced: %w", err)
	}
	bin := filepath.Join(build.dir, "presenced")
	cmd := exec.Command(goBin, "build", "-o", bin, "./cmd/presenced")
	cmd.Dir = filepath.Dir(gomod)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/presenced: %w\n%s", err, out)
	}
	return bin, nil
}

// Main runs the tests of a package, fails it if any answer broke the API
// documents (see contract.go), and removes the binary BuildPresenced made;
// call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if reportViolations() && code == 0 {
		code = 1
	}
	if build.dir != "" {
		_ = os.RemoveAll(build.dir)
	}
	os.Exit(code)
}
