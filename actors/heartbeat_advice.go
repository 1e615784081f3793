package actors

import "time"

// HeartbeatInterval is the heartbeat interval advised to clients when the
// node is not overloaded: a third of offlineAfter in whole seconds (so a
// client has three chances before it goes offline), at least one second.
func HeartbeatInterval(offlineAfter time.Duration) time.Duration {
	return max(time.Second, (offlineAfter / 3).Truncate(time.Second))
}

// AdvisedOfflineAfter is how long a user stays online after a heartbeat
// whose answer advised an interval of advised: offlineAfter scaled by how
// much longer than HeartbeatInterval the advice was, never less than
// offlineAfter. A client following the advice thus keeps its three chances.
// advised 0 (the heartbeat came through a node that gives no advice) is
// offlineAfter.
func AdvisedOfflineAfter(offlineAfter, advised time.Duration) time.Duration {
	base := HeartbeatInterval(offlineAfter)
	if advised <= base {
		return offlineAfter
	}
	return time.Duration(float64(offlineAfter) * float64(advised) / float64(base))
}
