package ws

// spareQueue is the largest emptied batch a queue keeps for its next
// frames.
const spareQueue = 4

// outQueue is a session's outbound queue: the frames waiting for the
// writer, the control frames asked for (a ping, a pong owed to the
// client), and whether a writer has the session.
//
// It is built for a node holding tens of thousands of idle sessions. The
// slice of frames exists only while frames wait (a fan-out to an idle
// session reuses the small slice the writer handed back, so it allocates
// nothing), and a writer (a turn on one of the node's writer workers, or a
// goroutine of the session's own) has the session only while there is
// something to write: push, ping and pong say when the caller must hand it
// to one. The writer takes the whole batch at once, so up to max frames
// wait while up to max more are being written: a client that falls 2*max
// frames behind is cut off.
//
// outQueue does no locking: its owner (the session) guards it with its
// own mutex, together with the state that decides what to push.
type outQueue struct {
	frames [][]byte
	// pong is the payload of the pong owed to the client (nil: none),
	// behind a pointer: an idle session keeps a word for it, not three.
	pong    *[]byte
	max     int32
	pingDue bool // a ping was asked for
	writing bool // a writer has the session
	stopped bool // the writer is done with the connection for good
}

// batch is what a writer takes from the queue at once.
type batch struct {
	frames [][]byte
	ping   bool
	pong   []byte // nil: no pong
}

func (b batch) empty() bool { return len(b.frames) == 0 && !b.ping && b.pong == nil }

func newOutQueue(max int) outQueue { return outQueue{max: int32(max)} }

// push appends frame unless max frames wait already (full). wake says the
// caller must hand the session to a writer.
func (q *outQueue) push(frame []byte) (ok, wake bool) {
	if len(q.frames) >= int(q.max) {
		return false, false
	}
	q.frames = append(q.frames, frame)
	return true, q.wake()
}

// ping asks the writer for a ping frame; wake as for push.
func (q *outQueue) ping() (wake bool) {
	q.pingDue = true
	return q.wake()
}

// pongFor asks the writer for a pong echoing payload, which the queue
// keeps (the client's last ping; an earlier unanswered one needs no answer
// of its own); wake as for push.
func (q *outQueue) pongFor(payload []byte) (wake bool) {
	q.pong = &payload
	return q.wake()
}

// wake marks a writer as running unless one runs already or the queue is
// stopped; true means the caller must start it.
func (q *outQueue) wake() bool {
	if q.writing || q.stopped {
		return false
	}
	q.writing = true
	return true
}

// len is how many frames wait for the writer.
func (q *outQueue) len() int { return len(q.frames) }

// take hands the writer everything that waits (the frames in order, and
// the control frames to send first) and puts spare, an emptied earlier
// batch, in their place. With nothing to write it returns more false and
// the writer must let the session go: the next push or ping hands it to a
// writer again.
func (q *outQueue) take(spare [][]byte) (b batch, more bool) {
	b = batch{frames: q.frames, ping: q.pingDue}
	if q.pong != nil {
		b.pong = *q.pong
		if b.pong == nil {
			b.pong = []byte{} // an empty pong is still a pong
		}
	}
	if b.empty() {
		if b.frames == nil {
			q.frames = spare
		}
		q.writing = false
		return batch{}, false
	}
	q.frames, q.pingDue, q.pong = spare, false, nil
	return b, true
}

// recycle returns a written batch emptied for reuse as take's spare, or nil
// when it is too large to keep (an idle session keeps a few words).
func recycle(frames [][]byte) [][]byte {
	if cap(frames) > spareQueue {
		return nil
	}
	clear(frames)
	return frames[:0]
}

// stop ends the writer for good: waiting frames are dropped and no writer
// is started again.
func (q *outQueue) stop() {
	q.stopped = true
	q.writing = false
	q.frames = nil
	q.pong = nil
}
