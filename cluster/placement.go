package cluster

import (
	"hash/fnv"
	"slices"
)

// Member is one node as the placement sees it.
type Member struct {
	// Name is the memberlist name, unique per process incarnation.
	Name string
	// NodeName is the operator-given name of the node.
	NodeName string
	// RemoteAddr is where the node's actors are reached (protoactor remote).
	RemoteAddr string
	// HTTPAddr is the node's advertised HTTP address.
	HTTPAddr string
	// GossipAddr is the node's memberlist address.
	GossipAddr string
	// Draining members still answer but own no users.
	Draining bool
	// State is memberlist's view: alive, suspect, dead or left.
	State string
	// Proto is the message protocol version the member speaks
	// (ProtoVersion of its build).
	Proto int

	seed uint64
}

// View is an immutable snapshot of the membership: the members that own
// users, in a stable order, and the rendezvous hashing over them.
type View struct {
	// Owners are the alive (or suspect), non-draining members; they share
	// the users. A suspect member keeps its users until it is declared
	// dead, so a slow probe does not move users back and forth.
	Owners []Member
	// All lists every member memberlist knows, for operators.
	All []Member
	// Epoch rises with every new view a node computes.
	Epoch uint64
}

// NewView makes the view of the members all, numbered epoch: the alive or
// suspect, non-draining members that advertise a remoting address own
// users.
func NewView(all []Member, epoch uint64) *View {
	v := &View{All: all, Epoch: epoch}
	for _, m := range all {
		if (m.State == "alive" || m.State == "suspect") && !m.Draining && m.RemoteAddr != "" {
			m.seed = memberSeed(m.Name)
			v.Owners = append(v.Owners, m)
		}
	}
	slices.SortFunc(v.Owners, func(a, b Member) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return v
}

func memberSeed(name string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(name))
	return h.Sum64()
}

// mix is splitmix64's finalizer: a fast, well-distributed 64-bit hash.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// Owner returns the member that owns userID by rendezvous (highest random
// weight) hashing: each user goes to the member with the highest score for
// it, so a member joining or leaving moves only the users it gains or
// loses. ok is false when no member can own users.
func (v *View) Owner(userID int64) (Member, bool) {
	if len(v.Owners) == 0 {
		return Member{}, false
	}
	best, bestScore := 0, uint64(0)
	u := mix(uint64(userID))
	for i := range v.Owners {
		if s := mix(v.Owners[i].seed ^ u); s > bestScore || i == 0 {
			best, bestScore = i, s
		}
	}
	return v.Owners[best], true
}

// Member returns the member named name.
func (v *View) Member(name string) (Member, bool) {
	for _, m := range v.All {
		if m.Name == name {
			return m, true
		}
	}
	return Member{}, false
}

// HasRemote reports whether addr belongs to a member that is alive.
func (v *View) HasRemote(addr string) bool {
	for _, m := range v.All {
		if m.RemoteAddr == addr && (m.State == "alive" || m.State == "suspect") {
			return true
		}
	}
	return false
}

// OwnerNamed returns the owning member named name.
func (v *View) OwnerNamed(name string) (Member, bool) {
	for _, m := range v.Owners {
		if m.Name == name {
			return m, true
		}
	}
	return Member{}, false
}
