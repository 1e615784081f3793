package testkit

import (
	"fmt"
	"testing"
	"time"
)

// Poll calls cond every interval until it returns nil or timeout passes;
// it returns the time taken and cond's last error.
func Poll(timeout, interval time.Duration, cond func() error) (time.Duration, error) {
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		err := cond()
		if err == nil {
			return time.Since(start), nil
		}
		if time.Now().After(deadline) {
			return time.Since(start), err
		}
		time.Sleep(interval)
	}
}

// Eventually polls cond every 25ms until it returns nil, and fails the
// test with cond's last error after timeout. It returns how long it took.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() error) time.Duration {
	t.Helper()
	d, err := Poll(timeout, 25*time.Millisecond, cond)
	if err != nil {
		t.Fatalf("%s: not reached within %v: %v", what, timeout, err)
	}
	return d
}

// Until polls cond every 10ms until it holds, failing the test after
// timeout with the message format (fmt.Sprintf with args).
func Until(t testing.TB, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	if _, err := Poll(timeout, 10*time.Millisecond, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	}); err != nil {
		t.Fatalf("%s not met within %v", fmt.Sprintf(format, args...), timeout)
	}
}

var errNotYet = fmt.Errorf("not yet")
