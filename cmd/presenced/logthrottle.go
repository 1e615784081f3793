package main

import (
	"context"
	"log/slog"
	"sort"
	"sync"
	"time"
)

// logBurst is how many records with the same message a second passes.
const logBurst = 10

// throttleHandler passes at most logBurst records per message per second
// and says how many it held back (with the next record in a later second).
// A failure that touches every request (every member draining at once, the
// database gone, a mass disconnect under overload) then costs a few lines
// a second instead of hundreds of thousands, while the first ones still
// carry their details.
type throttleHandler struct {
	slog.Handler
	st *throttleState
}

type throttleState struct {
	mu     sync.Mutex
	second int64          // the Unix second being counted
	counts map[string]int // records per message in that second
}

func newThrottleHandler(h slog.Handler) slog.Handler {
	return throttleHandler{Handler: h, st: &throttleState{counts: make(map[string]int)}}
}

// Handle implements slog.Handler.
func (h throttleHandler) Handle(ctx context.Context, r slog.Record) error {
	pass, held := h.st.admit(r.Message, r.Time)
	for _, s := range held {
		note := slog.NewRecord(r.Time, slog.LevelWarn, "log lines suppressed", 0)
		note.AddAttrs(slog.String("like", s.msg), slog.Int("count", s.count), slog.Duration("in", time.Second))
		_ = h.Handler.Handle(ctx, note)
	}
	if !pass {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

// WithAttrs implements slog.Handler; derived loggers share the counts.
func (h throttleHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return throttleHandler{Handler: h.Handler.WithAttrs(attrs), st: h.st}
}

// WithGroup implements slog.Handler.
func (h throttleHandler) WithGroup(name string) slog.Handler {
	return throttleHandler{Handler: h.Handler.WithGroup(name), st: h.st}
}

type heldBack struct {
	msg   string
	count int
}

// admit counts a record with message msg at time t and says whether it
// passes; on the first record of a new second it also returns what the
// last counted second held back.
func (s *throttleState) admit(msg string, t time.Time) (bool, []heldBack) {
	sec := t.Unix()
	s.mu.Lock()
	defer s.mu.Unlock()
	var held []heldBack
	if sec != s.second {
		for m, n := range s.counts {
			if n > logBurst {
				held = append(held, heldBack{m, n - logBurst})
			}
		}
		sort.Slice(held, func(i, j int) bool { return held[i].msg < held[j].msg })
		clear(s.counts)
		s.second = sec
	}
	s.counts[msg]++
	return s.counts[msg] <= logBurst, held
}
