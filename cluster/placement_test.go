package cluster

import (
	"fmt"
	"math"
	"testing"
)

func members(names ...string) []Member {
	out := make([]Member, len(names))
	for i, n := range names {
		out[i] = Member{Name: n, RemoteAddr: n + ":8090", State: "alive"}
	}
	return out
}

func TestOwnerIsStableAndBalanced(t *testing.T) {
	const users = 30000
	v3 := NewView(members("a", "b", "c"), 1)
	counts := map[string]int{}
	for id := int64(1); id <= users; id++ {
		m, ok := v3.Owner(id)
		if !ok {
			t.Fatal("no owner")
		}
		counts[m.Name]++
	}
	for name, n := range counts {
		share := float64(n) / users
		if math.Abs(share-1.0/3) > 0.02 {
			t.Errorf("member %s owns %.3f of users, want about 1/3", name, share)
		}
	}

	// Adding a member moves only users to the new member.
	v4 := NewView(members("a", "b", "c", "d"), 2)
	moved := 0
	for id := int64(1); id <= users; id++ {
		before, _ := v3.Owner(id)
		after, _ := v4.Owner(id)
		if before.Name != after.Name {
			moved++
			if after.Name != "d" {
				t.Fatalf("user %d moved %s -> %s, want only moves to the new member", id, before.Name, after.Name)
			}
		}
	}
	if share := float64(moved) / users; math.Abs(share-0.25) > 0.02 {
		t.Errorf("join moved %.3f of users, want about 1/4", share)
	}
}

func TestOwnerSkipsDrainingAndDead(t *testing.T) {
	all := members("a", "b", "c")
	all[1].Draining = true
	all[2].State = "dead"
	v := NewView(all, 1)
	for id := int64(1); id < 1000; id++ {
		if m, _ := v.Owner(id); m.Name != "a" {
			t.Fatalf("user %d owned by %s, want a (only alive, non-draining member)", id, m.Name)
		}
	}
	if _, ok := NewView(nil, 1).Owner(1); ok {
		t.Fatal("empty view has an owner")
	}
}

func TestOwnerIndependentOfOrder(t *testing.T) {
	v1 := NewView(members("a", "b", "c"), 1)
	v2 := NewView(members("c", "a", "b"), 1)
	for id := int64(1); id < 5000; id++ {
		m1, _ := v1.Owner(id)
		m2, _ := v2.Owner(id)
		if m1.Name != m2.Name {
			t.Fatalf("user %d: %s vs %s", id, m1.Name, m2.Name)
		}
	}
}

func BenchmarkOwner(b *testing.B) {
	for _, n := range []int{3, 10} {
		names := make([]string, n)
		for i := range names {
			names[i] = fmt.Sprintf("node-%d", i)
		}
		v := NewView(members(names...), 1)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				v.Owner(int64(i))
			}
		})
	}
}
