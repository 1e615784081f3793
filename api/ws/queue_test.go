package ws

import (
	"slices"
	"testing"
)

// queueOp is one step of a queue test: push a frame, ask a ping, take a
// batch (handing back the previous one emptied), or stop.
type queueOp struct {
	op    string // "push", "ping", "take", "stop"
	frame string
	// expectations
	ok, wake bool     // push, ping (ok unused)
	frames   []string // take
	ping     bool     // take
	more     bool     // take
}

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
				case "take":
					frames, ping, more := q.take(spare)
					var got []string
					for _, f := range frames {
						got = append(got, string(f))
					}
					if !slices.Equal(got, op.frames) || ping != op.ping || more != op.more {
						t.Fatalf("op %d take = %q ping %v more %v, want %q %v %v", i, got, ping, more, op.frames, op.ping, op.more)
					}
					spare = nil
					if more {
						spare = recycle(frames)
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
	frames, _, _ := q.take(nil)
	spare := recycle(frames)
	if spare == nil {
		t.Fatal("a small batch was not kept for reuse")
	}
	if _, _, more := q.take(spare); more {
		t.Fatal("take of an empty queue wants more")
	}
	if allocs := testing.AllocsPerRun(100, func() {
		q.push(frame)
		f, _, _ := q.take(nil)
		q.take(recycle(f))
	}); allocs != 0 {
		t.Fatalf("push to an idle queue allocates %v times", allocs)
	}
	big := make([][]byte, spareQueue+1)
	if recycle(big) != nil {
		t.Fatal("a large batch is kept")
	}
}

// BenchmarkOutQueue measures a frame through an idle session's queue: the
// fan-out's push, and the writer's take and handback.
func BenchmarkOutQueue(b *testing.B) {
	q := newOutQueue(256)
	frame := []byte(`{"type":"presence_update"}`)
	var spare [][]byte
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		q.push(frame)
		frames, _, _ := q.take(spare)
		spare = recycle(frames)
		q.take(spare)
		spare = nil
	}
}
