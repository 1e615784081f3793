package loadgen

import (
	"slices"
	"testing"
	"time"
)

func TestDuePacing(t *testing.T) {
	// 100/s with a 10 s ramp: 500 during the ramp, then 100 a second.
	if got := due(100, 10*time.Second, 10*time.Second); got != 500 {
		t.Errorf("after ramp: %d, want 500", got)
	}
	if got := due(100, 10*time.Second, 5*time.Second); got != 125 {
		t.Errorf("mid ramp: %d, want 125", got)
	}
	if got := due(100, 10*time.Second, 12*time.Second); got != 700 {
		t.Errorf("after ramp + 2 s: %d, want 700", got)
	}
	if got := due(100, 0, 3*time.Second); got != 300 {
		t.Errorf("no ramp: %d, want 300", got)
	}
}

func TestTopology(t *testing.T) {
	topo := Topology{Users: 20, UserBase: 100, Sessions: 15, Contacts: 3, Hot: 2}
	// subscribes and contactsOf agree, and forSubscribers finds exactly
	// the sessions that subscribe.
	for s := 0; s < topo.Sessions; s++ {
		cs := topo.contactsOf(s)
		for u := 0; u < topo.Users; u++ {
			if topo.subscribes(s, u) != slices.Contains(cs, u) {
				t.Errorf("session %d, user %d: subscribes=%v, contacts %v", s, u, topo.subscribes(s, u), cs)
			}
		}
	}
	for u := 0; u < topo.Users; u++ {
		var got []int
		topo.forSubscribers(u, 5, 7, func(s int) { got = append(got, s) })
		slices.Sort(got)
		var want []int
		for s := 5; s < 12; s++ {
			if topo.subscribes(s, u) {
				want = append(want, s)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("subscribers of %d in [5,12): %v, want %v", u, got, want)
		}
	}
	if u := wsURL("http://127.0.0.1:8000/", "t.o.k", topo, 4); u != "ws://127.0.0.1:8000/ws/presence?token=t.o.k&user_ids=100,101,105,106,107" {
		t.Errorf("url %s", u)
	}
}

// The matcher pairs receipts with announcements whichever comes first,
// counts only sessions that had subscribed before the change was sent, and
// reports the rest as missing.
func TestMatcher(t *testing.T) {
	topo := Topology{Users: 10, UserBase: 1, Sessions: 10, Contacts: 2}
	sess := make([]wsSess, 10)
	for i := range sess {
		sess[i].ackAt.Store(1000)
	}
	sess[7].ackAt.Store(5000) // subscribed after the change below was sent
	m := newMatcher(topo, 0, 10, sess)
	// User 9's subscribers: sessions 8 and 7.
	m.receive(8, 9, 4, 2500) // before the announcement
	m.announce(9, 4, 2000)
	m.receive(7, 9, 4, 2600) // not expected: subscribed too late
	m.receive(9, 9, 4, 2600) // own user: not counted
	// User 3 (subscribers 2 and 1): session 1 never gets it.
	m.announce(3, 8, 3000)
	m.receive(2, 3, 8, 3400)
	m.finish()
	exp, rec, miss, _, lat := m.snapshot()
	if exp != 3 || rec != 2 || miss != 1 {
		t.Fatalf("expected/received/missing = %d/%d/%d, want 3/2/1", exp, rec, miss)
	}
	if lat.N != 2 || lat.Min != 400 || lat.Max != 500 {
		t.Fatalf("latencies n=%d min=%d max=%d, want 2, 400, 500", lat.N, lat.Min, lat.Max)
	}
}

func TestParseUpdate(t *testing.T) {
	f := []byte(`{"type":"presence_update","data":{"user_id":1000042,"username":"x\",\"version\":9","is_online":true,"is_busy":false,"busy_until":null,"last_seen":"2026-11-29T21:26:50.140534Z","version":17},"timestamp":"2026-11-29T21:26:50.143464Z"}`)
	id, v, ok := parseUpdate(f)
	if !ok || id != 1000042 || v != 17 {
		t.Fatalf("parseUpdate = %d, %d, %v", id, v, ok)
	}
	if _, _, ok := parseUpdate([]byte(`{"type":"subscribed","user_ids":[1]}`)); ok {
		t.Fatal("a subscribed frame is not an update")
	}
}
