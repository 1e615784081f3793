package testkit

import (
	"time"

	"github.com/presence-cluster/presence/cluster"
)

// StatusPresence is what a presence read shows of an answered status.
func StatusPresence(s Status) Presence {
	return Presence{UserID: s.UserID, IsOnline: s.IsOnline, IsBusy: s.IsBusy, BusyUntil: s.BusyUntil, Version: s.Version}
}

// SamePresence compares what a client sees of two states, version
// included (names and last_seen are left out).
func SamePresence(a, b Presence) bool {
	return a.UserID == b.UserID && a.IsOnline == b.IsOnline && a.IsBusy == b.IsBusy &&
		a.Version == b.Version && SameTime(a.BusyUntil, b.BusyUntil)
}

// SameStatus is SamePresence for two status records.
func SameStatus(a, b Status) bool { return SamePresence(StatusPresence(a), StatusPresence(b)) }

// SameTime reports whether a and b are both nil or the same instant.
func SameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}

// RFC3339 formats tm as the API takes busy_until.
func RFC3339(tm time.Time) string { return tm.UTC().Format(time.RFC3339Nano) }

// AliveOwners counts the members of c in state alive that own users.
func AliveOwners(c ClusterStatus) int {
	n := 0
	for _, m := range c.Members {
		if m.Status == "alive" && m.Owner {
			n++
		}
	}
	return n
}

// Hosted returns actors_hosted per node name; ok is false when a member
// did not report (its error is in the status).
func Hosted(c ClusterStatus) (byNode map[string]int64, ok bool) {
	byNode = map[string]int64{}
	for _, m := range c.Members {
		if m.ActorsHosted == nil {
			return byNode, false
		}
		byNode[m.NodeName] = *m.ActorsHosted
	}
	return byNode, true
}

// HostedSum sums actors_hosted over the members; ok is false when a
// member did not report.
func HostedSum(c ClusterStatus) (sum int64, ok bool) {
	for _, m := range c.Members {
		if m.ActorsHosted == nil {
			return sum, false
		}
		sum += *m.ActorsHosted
	}
	return sum, true
}

// OwnerOf returns the node name of the member that owns userID in the
// view c shows (rendezvous hashing over the alive, user-owning members, as
// the nodes compute it); "" when none owns users.
func OwnerOf(c ClusterStatus, userID int64) string {
	var ms []cluster.Member
	for _, m := range c.Members {
		if m.Owner && m.Status == "alive" {
			ms = append(ms, cluster.Member{Name: m.Name, NodeName: m.NodeName, RemoteAddr: m.RemoteAddr, State: "alive"})
		}
	}
	m, ok := cluster.NewView(ms, 0).Owner(userID)
	if !ok {
		return ""
	}
	return m.NodeName
}
