package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestThrottleHandler(t *testing.T) {
	base := time.Date(2026, 11, 30, 1, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		// records: message and offset from base
		records []struct {
			msg string
			at  time.Duration
		}
		wantLines      map[string]int // message -> lines written
		wantSuppressed []string       // "like=<msg> count=<n>" fragments
	}{
		{
			name:      "under the burst: everything passes",
			records:   repeat("a", logBurst, 0),
			wantLines: map[string]int{"a": logBurst},
		},
		{
			name:           "over the burst in one second: the rest is held back and counted in the next second",
			records:        append(repeat("a", 25, 0), repeat("a", 1, 1100*time.Millisecond)...),
			wantLines:      map[string]int{"a": logBurst + 1, "log lines suppressed": 1},
			wantSuppressed: []string{"like=a count=15"},
		},
		{
			name:      "messages are counted apart",
			records:   append(repeat("a", logBurst, 0), repeat("b", logBurst, 0)...),
			wantLines: map[string]int{"a": logBurst, "b": logBurst},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			logger := slog.New(newThrottleHandler(slog.NewTextHandler(&out, nil))).With("node", "n1")
			for _, r := range tc.records {
				rec := slog.NewRecord(base.Add(r.at), slog.LevelWarn, r.msg, 0)
				if err := logger.Handler().Handle(t.Context(), rec); err != nil {
					t.Fatal(err)
				}
			}
			got := map[string]int{}
			for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
				if line == "" {
					continue
				}
				switch {
				case strings.Contains(line, `msg="log lines suppressed"`):
					got["log lines suppressed"]++
				case strings.Contains(line, "msg=a "):
					got["a"]++
				case strings.Contains(line, "msg=b "):
					got["b"]++
				}
			}
			for msg, n := range tc.wantLines {
				if got[msg] != n {
					t.Errorf("%q: %d lines, want %d\n%s", msg, got[msg], n, out.String())
				}
			}
			for _, frag := range tc.wantSuppressed {
				if !strings.Contains(out.String(), frag) {
					t.Errorf("output lacks %q:\n%s", frag, out.String())
				}
			}
		})
	}
}

func repeat(msg string, n int, at time.Duration) []struct {
	msg string
	at  time.Duration
} {
	out := make([]struct {
		msg string
		at  time.Duration
	}, n)
	for i := range out {
		out[i].msg, out[i].at = msg, at
	}
	return out
}
