package actors

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/presence-cluster/presence/messages"
)

// recordingFeed is a ChangeFeed that records what the actors enqueue.
type recordingFeed struct {
	mu        sync.Mutex
	changed   []uint64 // versions, in order
	activated []uint64
}

func (f *recordingFeed) Changed(st *messages.UserState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.changed = append(f.changed, st.GetVersion())
}

func (f *recordingFeed) Activated(st *messages.UserState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.activated = append(f.activated, st.GetVersion())
}

func (f *recordingFeed) got() (changed, activated []uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.changed), slices.Clone(f.activated)
}

func withFeed(f ChangeFeed) envOption {
	return func(_ *env, c *Config) { c.Feed = f }
}

// TestFeedGetsEveryVisibleChange: the feed gets each version the actor
// writes, timer transitions included, and nothing for a heartbeat that only
// moves last_seen; the stored state is offered on activation.
func TestFeedGetsEveryVisibleChange(t *testing.T) {
	feed := &recordingFeed{}
	e := newEnv(t, withFeed(feed))
	const id = 501
	e.put(&messages.UserState{UserId: id, Username: "u", Version: 7, CreatedAt: at(0), UpdatedAt: at(0), LastSeen: at(0)}, 0)
	e.first(heartbeat(id))                        // activation (7), then online: 8
	e.req(heartbeat(id))                          // last_seen only: nothing
	e.req(update(id, busyUntil(at(time.Minute)))) // 9
	e.req(update(id, &messages.UpdateStatus{}))   // nothing visible
	e.advance(id, time.Minute+time.Second)        // busy expires: 10
	e.advance(id, testOfflineAfter)               // inactivity: offline, 11
	changed, activated := feed.got()
	if want := []uint64{8, 9, 10, 11}; !slices.Equal(changed, want) {
		t.Errorf("Changed versions %v, want %v", changed, want)
	}
	if want := []uint64{7}; !slices.Equal(activated, want) {
		t.Errorf("Activated versions %v, want %v", activated, want)
	}
}
