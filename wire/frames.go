package wire

import "time"

// Frame types of the WebSocket protocol at /ws/presence.
const (
	// Client to server.
	TypeSubscribe   = "subscribe"   // UserIDs
	TypeUnsubscribe = "unsubscribe" // UserIDs
	TypeHeartbeat   = "heartbeat"   // no fields; gets no answer

	// Server to client.
	TypeSubscribed     = "subscribed"      // UserIDs
	TypeUnsubscribed   = "unsubscribed"    // UserIDs
	TypePresenceUpdate = "presence_update" // Data, Timestamp
	TypeError          = "error"           // Detail
)

// Frame is any WebSocket frame, in either direction; Type says which of the
// other fields it carries (see the Type constants). Fields a type does not
// carry are left out when encoding.
type Frame struct {
	Type string `json:"type"`
	// Data is the user's presence in a presence_update.
	Data *Presence `json:"data,omitempty"`
	// Timestamp is when the server sent a presence_update.
	Timestamp time.Time `json:"timestamp,omitzero"`
	// UserIDs of a subscribe, unsubscribe, subscribed or unsubscribed.
	UserIDs []int64 `json:"user_ids,omitempty"`
	// Detail explains an error.
	Detail string `json:"detail,omitempty"`
}

// SubscribeFrame is the client frame subscribing to ids.
func SubscribeFrame(ids []int64) Frame { return Frame{Type: TypeSubscribe, UserIDs: ids} }

// UnsubscribeFrame is the client frame unsubscribing from ids.
func UnsubscribeFrame(ids []int64) Frame { return Frame{Type: TypeUnsubscribe, UserIDs: ids} }

// HeartbeatFrame is the client's sign of life on an idle connection.
func HeartbeatFrame() Frame { return Frame{Type: TypeHeartbeat} }
