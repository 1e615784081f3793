package cluster

import (
	"testing"
	"time"
)

// Failure detection: memberlist gets the configured (or default) settings,
// with the suspicion timeout fixed (max multiplier 1) so that a crash in a
// small cluster is not detected later for lack of confirmations.
func TestDetectionSettings(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   Detection
		want Detection
	}{
		{"defaults", Detection{}, DefaultDetection()},
		{"set", Detection{ProbeInterval: 2 * time.Second, ProbeTimeout: time.Second, SuspicionMult: 5, SuspicionMaxTimeoutMult: 3, GossipInterval: time.Second},
			Detection{ProbeInterval: 2 * time.Second, ProbeTimeout: time.Second, SuspicionMult: 5, SuspicionMaxTimeoutMult: 3, GossipInterval: time.Second}},
		{"negative means default", Detection{ProbeInterval: -1, SuspicionMult: -2}, DefaultDetection()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mc, err := Config{BindAddr: "127.0.0.1:0", Detection: tc.in}.withDefaults().memberlistConfig("x")
			if err != nil {
				t.Fatal(err)
			}
			got := Detection{mc.ProbeInterval, mc.ProbeTimeout, mc.SuspicionMult, mc.SuspicionMaxTimeoutMult, mc.GossipInterval}
			if got != tc.want {
				t.Fatalf("memberlist got %+v, want %+v", got, tc.want)
			}
		})
	}
	if d := DefaultDetection().SuspicionMaxTimeoutMult; d != 1 {
		t.Fatalf("default SuspicionMaxTimeoutMult %d, want 1 (a fixed suspicion timeout)", d)
	}
}

func TestDetectionTime(t *testing.T) {
	d := DefaultDetection()
	for _, tc := range []struct {
		members int
		want    time.Duration
	}{
		{1, 4800 * time.Millisecond},
		{3, 4800 * time.Millisecond},
		{10, 4800 * time.Millisecond},
		{50, 2400*time.Millisecond + 4077528010*time.Nanosecond},
	} {
		if got := d.DetectionTime(tc.members); got.Round(time.Millisecond) != tc.want.Round(time.Millisecond) {
			t.Errorf("DetectionTime(%d) = %v, want %v", tc.members, got, tc.want)
		}
	}
}
