package testkit

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// LogRecord is one record a LogSink kept.
type LogRecord struct {
	Time  time.Time
	Level slog.Level
	Msg   string
	Attrs map[string]slog.Value
}

// LogSink keeps a node's log records, to print on failure and to read
// what the node reported about itself. Records below MinLevel are
// dropped; with Limit > 0 only about the newest Limit are kept, except
// those whose message is in Keep.
type LogSink struct {
	MinLevel slog.Level
	Limit    int
	Keep     map[string]bool

	mu      sync.Mutex
	records []LogRecord
	kept    []LogRecord
}

// NewLogSink keeps every record of every level.
func NewLogSink() *LogSink { return &LogSink{MinLevel: slog.LevelDebug - 4} }

// Logger is a logger writing to s.
func (s *LogSink) Logger() *slog.Logger { return slog.New(s.Handler()) }

// Handler is an slog.Handler writing to s.
func (s *LogSink) Handler() slog.Handler { return &sinkHandler{sink: s} }

// Find returns the records with message msg.
func (s *LogSink) Find(msg string) []LogRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []LogRecord
	if s.Keep[msg] {
		return append(out, s.kept...)
	}
	for _, r := range s.records {
		if r.Msg == msg {
			out = append(out, r)
		}
	}
	return out
}

// Dump formats the records kept, one a line.
func (s *LogSink) Dump() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	for _, r := range s.records {
		fmt.Fprintf(&b, "  %s %s %s", r.Time.Format("15:04:05.000000"), r.Level, r.Msg)
		for k, v := range r.Attrs {
			fmt.Fprintf(&b, " %s=%v", k, v)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func (s *LogSink) add(r LogRecord) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Keep[r.Msg] {
		s.kept = append(s.kept, r)
	}
	s.records = append(s.records, r)
	if s.Limit > 0 && len(s.records) > 2*s.Limit {
		s.records = append([]LogRecord(nil), s.records[len(s.records)-s.Limit:]...)
	}
}

type sinkHandler struct {
	sink  *LogSink
	attrs []slog.Attr
}

func (h *sinkHandler) Enabled(_ context.Context, lv slog.Level) bool { return lv >= h.sink.MinLevel }

func (h *sinkHandler) Handle(_ context.Context, r slog.Record) error {
	rec := LogRecord{Time: r.Time, Level: r.Level, Msg: r.Message, Attrs: map[string]slog.Value{}}
	for _, a := range h.attrs {
		rec.Attrs[a.Key] = a.Value
	}
	r.Attrs(func(a slog.Attr) bool {
		rec.Attrs[a.Key] = a.Value
		return true
	})
	h.sink.add(rec)
	return nil
}

func (h *sinkHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &sinkHandler{sink: h.sink, attrs: append(append([]slog.Attr(nil), h.attrs...), as...)}
}

func (h *sinkHandler) WithGroup(string) slog.Handler { return h }
