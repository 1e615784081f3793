package node

import (
	"slices"
	"testing"

	"github.com/presence-cluster/presence/cluster"
)

func TestStaleRemotes(t *testing.T) {
	m := func(name, addr, state string) cluster.Member {
		return cluster.Member{Name: name, RemoteAddr: addr, State: state}
	}
	a, b := m("a-1", "10.0.0.1:8090", "alive"), m("b-1", "10.0.0.2:8090", "alive")
	for _, tc := range []struct {
		name     string
		old, cur []cluster.Member
		want     []string
	}{
		{"first view", nil, []cluster.Member{a, b}, nil},
		{"no change", []cluster.Member{a, b}, []cluster.Member{a, b}, nil},
		{"suspect keeps its connection", []cluster.Member{a, b}, []cluster.Member{a, m("b-1", b.RemoteAddr, "suspect")}, nil},
		{"declared dead", []cluster.Member{a, b}, []cluster.Member{a, m("b-1", b.RemoteAddr, "dead")}, []string{b.RemoteAddr}},
		{"left and forgotten", []cluster.Member{a, b}, []cluster.Member{a}, []string{b.RemoteAddr}},
		{"dead member back under its name", []cluster.Member{a, m("b-1", b.RemoteAddr, "dead")}, []cluster.Member{a, b}, nil},
		{"restarted at the same address before it was declared dead",
			[]cluster.Member{a, b}, []cluster.Member{a, b, m("b-2", b.RemoteAddr, "alive")}, []string{b.RemoteAddr}},
		{"then the old one declared dead", []cluster.Member{a, b, m("b-2", b.RemoteAddr, "alive")},
			[]cluster.Member{a, m("b-2", b.RemoteAddr, "alive")}, nil},
		{"a new member at a new address", []cluster.Member{a, b}, []cluster.Member{a, b, m("c-1", "10.0.0.3:8090", "alive")}, nil},
		{"restarted elsewhere", []cluster.Member{a, m("b-1", b.RemoteAddr, "dead")},
			[]cluster.Member{a, m("b-1", b.RemoteAddr, "dead"), m("b-2", "10.0.0.3:8090", "alive")}, nil},
		{"no remoting address", nil, []cluster.Member{m("c-1", "", "alive")}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := staleRemotes(cluster.NewView(tc.old, 1), cluster.NewView(tc.cur, 2))
			if !slices.Equal(got, tc.want) {
				t.Errorf("stale remotes = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestOwnersChanged(t *testing.T) {
	m := func(name, state string, draining bool) cluster.Member {
		return cluster.Member{Name: name, RemoteAddr: name + ":8090", State: state, Draining: draining}
	}
	a, b := m("a", "alive", false), m("b", "alive", false)
	for _, tc := range []struct {
		name     string
		old, cur []cluster.Member
		want     bool
	}{
		{"first view", nil, []cluster.Member{a}, true},
		{"no change", []cluster.Member{a, b}, []cluster.Member{a, b}, false},
		{"suspect still owns", []cluster.Member{a, b}, []cluster.Member{a, m("b", "suspect", false)}, false},
		{"joined", []cluster.Member{a}, []cluster.Member{a, b}, true},
		{"draining", []cluster.Member{a, b}, []cluster.Member{a, m("b", "alive", true)}, true},
		{"declared dead", []cluster.Member{a, b}, []cluster.Member{a, m("b", "dead", false)}, true},
		{"one left, another joined", []cluster.Member{a, b}, []cluster.Member{a, m("c", "alive", false)}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ownersChanged(cluster.NewView(tc.old, 1), cluster.NewView(tc.cur, 2)); got != tc.want {
				t.Errorf("owners changed = %v, want %v", got, tc.want)
			}
		})
	}
}
