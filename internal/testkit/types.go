package testkit

import (
	"encoding/json"

	"github.com/presence-cluster/presence/wire"
)

// The API's JSON bodies, as the server declares them.
type (
	Status        = wire.Status
	Presence      = wire.Presence
	Cleanup       = wire.Cleanup
	Heartbeat     = wire.Heartbeat
	ClusterStatus = wire.ClusterStatus
	MemberStatus  = wire.MemberStatus
	Disconnect    = wire.Disconnect
	// UserInspection is GET /admin/users/{id}; ClusterStats GET /admin/stats.
	UserInspection = wire.UserInspection
	ClusterStats   = wire.ClusterStats
)

// WireFrame is a WebSocket frame as the tests read it: wire.Frame with the
// presence data kept raw (tests check its exact shape) and the timestamp
// as sent (tests check its format).
type WireFrame struct {
	Type      string          `json:"type"`
	Data      json.RawMessage `json:"data"`
	UserIDs   []int64         `json:"user_ids"`
	Detail    string          `json:"detail"`
	Timestamp string          `json:"timestamp"`
	ExpiresAt string          `json:"expires_at"`
}
