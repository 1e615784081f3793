package testkit

// The JSON bodies the tests decode. Temporary: the field names and JSON
// tags are those of the API, and the wire package replaces these
// declarations when the branches merge.

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Status is the record of GET/PUT /users/me/status.
type Status struct {
	UserID    int64      `json:"user_id"`
	IsOnline  bool       `json:"is_online"`
	IsBusy    bool       `json:"is_busy"`
	BusyUntil *time.Time `json:"busy_until"`
	LastSeen  *time.Time `json:"last_seen"`
	CreatedAt *time.Time `json:"created_at"`
	UpdatedAt *time.Time `json:"updated_at"`
	Version   uint64     `json:"version"`
}

// Presence is the record of the presence endpoints and of pushed updates.
type Presence struct {
	UserID    int64      `json:"user_id"`
	Username  string     `json:"username"`
	IsOnline  bool       `json:"is_online"`
	IsBusy    bool       `json:"is_busy"`
	BusyUntil *time.Time `json:"busy_until"`
	LastSeen  *time.Time `json:"last_seen"`
	Version   uint64     `json:"version"`
}

// Cleanup is the body of POST /admin/cleanup-presence.
type Cleanup struct {
	Message            string `json:"message"`
	UsersMarkedOffline int64  `json:"users_marked_offline"`
	BusyStatusCleared  int64  `json:"busy_status_cleared"`
}

// ClusterStatus is the body of GET /admin/cluster.
type ClusterStatus struct {
	Node       string         `json:"node"`
	Standalone bool           `json:"standalone"`
	Epoch      uint64         `json:"epoch"`
	Members    []MemberStatus `json:"members"`
}

// MemberStatus is one member of GET /admin/cluster.
type MemberStatus struct {
	Name         string `json:"name"`
	NodeName     string `json:"node_name"`
	Status       string `json:"status"`
	Draining     bool   `json:"draining"`
	Owner        bool   `json:"owns_users"`
	Self         bool   `json:"self"`
	HTTPAddr     string `json:"http_addr"`
	GossipAddr   string `json:"gossip_addr"`
	RemoteAddr   string `json:"remote_addr"`
	ActorsHosted *int64 `json:"actors_hosted"`
	Error        string `json:"error"`
}

// WireFrame is a WebSocket frame of either direction.
type WireFrame struct {
	Type      string          `json:"type"`
	Data      json.RawMessage `json:"data"`
	UserIDs   []int64         `json:"user_ids"`
	Detail    string          `json:"detail"`
	Timestamp string          `json:"timestamp"`
}

// String is for failure messages.
func (p Presence) String() string {
	bu := "null"
	if p.BusyUntil != nil {
		bu = p.BusyUntil.Format(time.RFC3339Nano)
	}
	return fmt.Sprintf("{user %d online=%v busy=%v until=%s v%d}", p.UserID, p.IsOnline, p.IsBusy, bu, p.Version)
}

// String is for failure messages.
func (s Status) String() string { return StatusPresence(s).String() }

// String is for failure messages.
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
