package webhook

import "context"

// Ledger records, per receiver and user, the highest version a receiver
// accepted. The PostgreSQL store implements it (store.Postgres, through
// store.Lazy), so a node that takes over a user can tell whether the
// previous owner delivered the user's latest change.
type Ledger interface {
	// WebhookDelivered returns the delivered version of each of ids that
	// has one (a user missing from the map has none).
	WebhookDelivered(ctx context.Context, receiver string, ids []int64) (map[int64]uint64, error)
	// ConfirmWebhook raises the delivered version of each user in
	// versions; a lower value than the recorded one is ignored.
	ConfirmWebhook(ctx context.Context, receiver string, versions map[int64]uint64) error
}
