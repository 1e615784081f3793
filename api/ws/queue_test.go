package ws

import (
	"slices"
	"testing"
)

// queueOp is one step of a queue test: push a frame, ask a ping or a
// pong, take a batch (handing back the previous one emptied), or stop.
type queueOp struct {
	op    string // "push", "ping", "pong", "take", "stop"
	frame string // push; pong: its payload
	// expectations
	ok, wake bool     // push, ping, pong (ok unused)
	frames   []string // take
	ping     bool     // take
	pong     *string  // take: the pong's payload, nil: none
	more     bool     // take
}

func ptr(s string) *string { return &s }

func TestOutQueue(t *testing.T) {
	tests := []struct {
		name string
		max  int
		ops  []queueOp
	}{
		{"order kept, one writer woken", 4, []queueOp{
			{op: "push", frame: "a", ok: true, wake: true},
			{op: "push", frame: "b", ok: true},
			{op: "push", frame: "c", ok: true},
			{op: "take", frames: []string{"a", "b", "c"}, more: true},
			{op: "take", more: false},
			{op: "push", frame: "d", ok: true, wake: true},
			{op: "take", frames: []string{"d"}, more: true},
		}},
		{"bound enforced: a full queue refuses (slow consumer)", 2, []queueOp{
			{op: "push", frame: "a", ok: true, wake: true},
			{op: "push", frame: "b", ok: true},
			{op: "push", frame: "c", ok: false},
			{op: "take", frames: []string{"a", "b"}, more: true},
			// While the writer writes a batch, max more may wait: 2x.
			{op: "push", frame: "c", ok: true},
			{op: "push", frame: "d", ok: true},
			{op: "push", frame: "e", ok: false},
			{op: "take", frames: []string{"c", "d"}, more: true},
		}},
		{"ping rides with the next batch", 4, []queueOp{
			{op: "ping", wake: true},
			{op: "push", frame: "a", ok: true},
			{op: "take", frames: []string{"a"}, ping: true, more: true},
			{op: "take", more: false},
			{op: "ping", wake: true},
			{op: "take", ping: true, more: true},
		}},
		{"pong: the last ping's payload, once", 4, []queueOp{
			{op: "pong", frame: "p1", wake: true},
			{op: "pong", frame: "p2"},
			{op: "push", frame: "a", ok: true},
			{op: "take", frames: []string{"a"}, pong: ptr("p2"), more: true},
			{op: "take", more: false},
			{op: "pong", frame: "", wake: true},
			{op: "take", pong: ptr(""), more: true},
		}},
		{"stop drops frames and wakes no writer", 4, []queueOp{
			{op: "push", frame: "a", ok: true, wake: true},
			{op: "stop"},
			{op: "push", frame: "b", ok: true, wake: false},
			{op: "ping", wake: false},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := newOutQueue(tc.max)
			var spare [][]byte
			for i, op := range tc.ops {
				switch op.op {
				case "push":
					ok, wake := q.push([]byte(op.frame))
					if ok != op.ok || wake != op.wake {
						t.Fatalf("op %d push %q = ok %v wake %v, want %v %v", i, op.frame, ok, wake, op.ok, op.wake)
					}
				case "ping":
					if wake := q.ping(); wake != op.wake {
						t.Fatalf("op %d ping wake = %v, want %v", i, wake, op.wake)
					}
				case "pong":
					if wake := q.pongFor([]byte(op.frame)); wake != op.wake {
						t.Fatalf("op %d pong wake = %v, want %v", i, wake, op.wake)
					}
				case "take":
					b, more := q.take(spare)
					var got []string
					for _, f := range b.frames {
						got = append(got, string(f))
					}
					if !slices.Equal(got, op.frames) || b.ping != op.ping || more != op.more {
						t.Fatalf("op %d take = %q ping %v more %v, want %q %v %v", i, got, b.ping, more, op.frames, op.ping, op.more)
					}
					if (b.pong == nil) != (op.pong == nil) || (op.pong != nil && string(b.pong) != *op.pong) {
						t.Fatalf("op %d take pong = %q (nil %v), want %v", i, b.pong, b.pong == nil, op.pong)
					}
					spare = nil
					if more {
						spare = recycle(b.frames)
					}
				case "stop":
					q.stop()
					if q.len() != 0 {
						t.Fatalf("op %d: %d frames left after stop", i, q.len())
					}
				}
			}
		})
	}
}

// TestOutQueueHandback: a written batch's slice comes back as the queue of
// the next frames, so a frame to an idle session allocates nothing; a large
// batch is not kept.
func TestOutQueueHandback(t *testing.T) {
	q := newOutQueue(256)
	frame := []byte("x")
	q.push(frame)
	b, _ := q.take(nil)
	spare := recycle(b.frames)
	if spare == nil {
		t.Fatal("a small batch was not kept for reuse")
	}
	if _, more := q.take(spare); more {
		t.Fatal("take of an empty queue wants more")
	}
	if allocs := testing.AllocsPerRun(100, func() {
		q.push(frame)
		b, _ := q.take(nil)
		q.take(recycle(b.frames))
	}); allocs != 0 {
		t.Fatalf("push to an idle queue allocates %v times", allocs)
	}
	big := make([][]byte, spareQueue+1)
	if recycle(big) != nil {
		t.Fatal("a large batch is kept")
	}
}

// BenchmarkOutQueue measures a frame through an idle session's queue as a
// writer worker handles it: the fan-out's push, the worker's take, the
// framing into its write buffer, and the handback.
func BenchmarkOutQueue(b *testing.B) {
	q := newOutQueue(256)
	frame := []byte(`{"type":"presence_update","user_id":42,"username":"alice","is_online":true,"version":7}`)
	var (
		spare [][]byte
		buf   []byte
	)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		q.push(frame)
		batch, _ := q.take(spare)
		buf = appendBatch(buf[:0], batch)
		spare = recycle(batch.frames)
		q.take(spare)
		spare = nil
	}
}
