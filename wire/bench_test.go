package wire

import (
	"testing"
	"time"

	"github.com/presence-cluster/presence/messages"
)

// The encoder benchmarks moved here from api/bench_test.go (BenchmarkEncode).

func benchState() *messages.UserState {
	now := time.Date(2026, 11, 29, 21, 26, 50, 140534000, time.UTC)
	return &messages.UserState{
		UserId: 1_000_042, Username: "alice_smith", IsOnline: true, IsBusy: true,
		BusyUntil: now.Add(time.Hour).UnixMicro(), LastSeen: now.UnixMicro(),
		CreatedAt: now.Add(-time.Hour).UnixMicro(), UpdatedAt: now.UnixMicro(), Version: 1234,
	}
}

func BenchmarkEncode(b *testing.B) {
	st := benchState()
	now := time.Now()
	b.Run("AppendPresence", func(b *testing.B) {
		buf := AppendPresence(nil, st)
		b.SetBytes(int64(len(buf)))
		b.ReportAllocs()
		for b.Loop() {
			buf = AppendPresence(buf[:0], st)
		}
	})
	b.Run("AppendStatus", func(b *testing.B) {
		buf := AppendStatus(nil, st)
		b.SetBytes(int64(len(buf)))
		b.ReportAllocs()
		for b.Loop() {
			buf = AppendStatus(buf[:0], st)
		}
	})
	b.Run("AppendUpdateFrame", func(b *testing.B) {
		buf := AppendUpdateFrame(nil, st, now)
		b.SetBytes(int64(len(buf)))
		b.ReportAllocs()
		for b.Loop() {
			buf = AppendUpdateFrame(buf[:0], st, now)
		}
	})
	// What the hub does per change: a fresh 256-byte buffer (the frame is
	// shared by every session's queue, so it cannot be pooled).
	b.Run("AppendUpdateFrame/hub", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = AppendUpdateFrame(make([]byte, 0, 256), st, now)
		}
	})
}

func TestEncodersDoNotAllocateWithCapacity(t *testing.T) {
	st := benchState()
	now := time.Now()
	ids := []int64{1, 2, 3}
	buf := make([]byte, 0, 512)
	for name, f := range map[string]func(){
		"AppendStatus":      func() { buf = AppendStatus(buf[:0], st) },
		"AppendUpdateFrame": func() { buf = AppendUpdateFrame(buf[:0], st, now) },
		"AppendIDsFrame":    func() { buf = AppendIDsFrame(buf[:0], TypeSubscribed, ids) },
		"AppendErrorFrame":  func() { buf = AppendErrorFrame(buf[:0], "bad frame") },
		"AppendDetail":      func() { buf = AppendDetail(buf[:0], "User status not found") },
		"AppendCleanup":     func() { buf = AppendCleanup(buf[:0], 1, 2) },
		"AppendHeartbeat":   func() { buf = AppendHeartbeat(buf[:0], 100, 300) },
	} {
		if allocs := testing.AllocsPerRun(100, f); allocs != 0 {
			t.Errorf("%s allocates %.1f times per call into a big enough buffer, want 0", name, allocs)
		}
	}
}
