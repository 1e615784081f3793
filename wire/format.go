package wire

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// String formats the record compactly, for logs and test failures.
func (p Presence) String() string {
	bu := "null"
	if p.BusyUntil != nil {
		bu = p.BusyUntil.Format(time.RFC3339Nano)
	}
	return fmt.Sprintf("{user %d online=%v busy=%v until=%s v%d}", p.UserID, p.IsOnline, p.IsBusy, bu, p.Version)
}

// String formats the record compactly, for logs and test failures.
func (s Status) String() string {
	return Presence{UserID: s.UserID, IsOnline: s.IsOnline, IsBusy: s.IsBusy, BusyUntil: s.BusyUntil, LastSeen: s.LastSeen, Version: s.Version}.String()
}

// String formats the membership compactly, for logs and test failures.
func (c ClusterStatus) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "node %s epoch %d:", c.Node, c.Epoch)
	for _, m := range c.Members {
		h := "?"
		if m.ActorsHosted != nil {
			h = strconv.FormatInt(*m.ActorsHosted, 10)
		}
		fmt.Fprintf(&b, " [%s %s owner=%v draining=%v hosted=%s%s]", m.NodeName, m.Status, m.Owner, m.Draining, h, m.Error)
	}
	return b.String()
}
