package wire

import "time"

// Frame types of the WebSocket protocol at /ws/presence.
const (
	// Client to server.
	TypeSubscribe   = "subscribe"   // UserIDs
	TypeUnsubscribe = "unsubscribe" // UserIDs
	TypeHeartbeat   = "heartbeat"   // no fields; gets no answer
	TypeRefresh     = "refresh"     // Token; answered refreshed or error

	// Server to client.
	TypeSubscribed     = "subscribed"      // UserIDs
	TypeUnsubscribed   = "unsubscribed"    // UserIDs
	TypePresenceUpdate = "presence_update" // Data, Timestamp
	TypeError          = "error"           // Detail
	TypeRefreshed      = "refreshed"       // ExpiresAt
)

// Close codes and reasons of the session-lifetime rules (RFC 6455 leaves
// 4000-4999 to applications).
const (
	// CloseTokenExpired: the session's token expired (exp plus the
	// server's leeway passed) without a refresh. Reconnect with a fresh
	// token.
	CloseTokenExpired       = 4001
	CloseTokenExpiredReason = "token expired"
	// CloseDisconnected: an administrator disconnected the user. Do not
	// reconnect with the same token unless the application decides to.
	CloseDisconnected       = 4003
	CloseDisconnectedReason = "disconnected"
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
	// Token is the new JWT of a refresh.
	Token string `json:"token,omitempty"`
	// ExpiresAt of a refreshed answer is the new token's exp (the
	// server's leeway not added): the session is closed with
	// CloseTokenExpired once it has passed, unless refreshed again.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// SubscribeFrame is the client frame subscribing to ids.
func SubscribeFrame(ids []int64) Frame { return Frame{Type: TypeSubscribe, UserIDs: ids} }

// UnsubscribeFrame is the client frame unsubscribing from ids.
func UnsubscribeFrame(ids []int64) Frame { return Frame{Type: TypeUnsubscribe, UserIDs: ids} }

// HeartbeatFrame is the client's sign of life on an idle connection.
func HeartbeatFrame() Frame { return Frame{Type: TypeHeartbeat} }

// RefreshFrame is the client frame that extends its session to the exp of
// token, a fresh JWT of the same user.
func RefreshFrame(token string) Frame { return Frame{Type: TypeRefresh, Token: token} }
