package wire

// WebhookBatch is the body of a change-feed request (PRESENCE_WEBHOOK_URL):
// presence_update frames, as sent over WebSocket, each stamped with the time
// of its change. Per user, events come in version order; a receiver dedupes
// by (user_id, version).
type WebhookBatch struct {
	Events []Frame `json:"events"`
}
