package testkit

import (
	"fmt"
	"net/http"
	"os"
	"sync"

	"github.com/presence-cluster/presence/internal/contract"
)

// Every REST answer and WebSocket frame the e2e suites receive through
// testkit is checked against the API's OpenAPI and AsyncAPI documents, so
// the documents cannot drift from the server. A violation is recorded,
// not raised in the test that saw it (clients here have no *testing.T);
// Main fails the test binary if any was recorded.

var (
	validator = sync.OnceValues(contract.Load)

	violationsMu sync.Mutex
	violations   []string
)

func mustValidator() *contract.Validator {
	v, err := validator()
	if err != nil {
		panic(fmt.Sprintf("testkit: load the API documents: %v", err))
	}
	return v
}

// checkedTransport validates every answer that passes through next.
func checkedTransport(next http.RoundTripper) http.RoundTripper {
	return mustValidator().Transport(next, func(err error) { recordViolation(err) })
}

// checkFrame validates one WebSocket frame the server sent.
func checkFrame(frame []byte) {
	if err := mustValidator().CheckFrame(frame); err != nil {
		recordViolation(fmt.Errorf("frame %s: %w", frame, err))
	}
}

func recordViolation(err error) {
	violationsMu.Lock()
	defer violationsMu.Unlock()
	if len(violations) < 50 {
		violations = append(violations, err.Error())
	}
}

// reportViolations prints what was recorded and reports whether anything
// was.
func reportViolations() bool {
	violationsMu.Lock()
	defer violationsMu.Unlock()
	for _, v := range violations {
		fmt.Fprintln(os.Stderr, "API contract violation:", v)
	}
	return len(violations) > 0
}
