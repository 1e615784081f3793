package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
)

// WebhookLedger is a store that records what the change feed delivered
// (webhook.Ledger): the PostgreSQL store, and Lazy when its backend is one.
type WebhookLedger interface {
	WebhookDelivered(ctx context.Context, receiver string, ids []int64) (map[int64]uint64, error)
	ConfirmWebhook(ctx context.Context, receiver string, versions map[int64]uint64) error
}

const webhookDeliveredSQL = `SELECT user_id, version FROM presence_webhook_delivered
WHERE receiver = $1 AND user_id = ANY($2)`

// The rows are written in user_id order, so concurrent confirmations of
// two receivers' batches (or two nodes') cannot deadlock.
const confirmWebhookSQL = `INSERT INTO presence_webhook_delivered (receiver, user_id, version)
SELECT $1, u, v FROM unnest($2::bigint[], $3::bigint[]) AS t(u, v) ORDER BY u
ON CONFLICT (receiver, user_id) DO UPDATE
SET version = GREATEST(presence_webhook_delivered.version, EXCLUDED.version)`

// WebhookDelivered returns the delivered version of each of ids that has
// one, for receiver.
func (p *Postgres) WebhookDelivered(ctx context.Context, receiver string, ids []int64) (map[int64]uint64, error) {
	if p.closed.Load() {
		return nil, errClosed
	}
	rows, err := p.pool.Query(ctx, webhookDeliveredSQL, receiver, ids)
	if err != nil {
		return nil, wrapPgErr(err, "read webhook ledger of %d users", len(ids))
	}
	defer rows.Close()
	out := make(map[int64]uint64, len(ids))
	for rows.Next() {
		var id, v int64
		if err := rows.Scan(&id, &v); err != nil {
			return nil, wrapPgErr(err, "read webhook ledger")
		}
		out[id] = uint64(v)
	}
	if err := rows.Err(); err != nil {
		return nil, wrapPgErr(err, "read webhook ledger")
	}
	return out, nil
}

// ConfirmWebhook raises the delivered version of each user in versions for
// receiver; a lower value than the recorded one is ignored.
func (p *Postgres) ConfirmWebhook(ctx context.Context, receiver string, versions map[int64]uint64) error {
	if len(versions) == 0 {
		return nil
	}
	if p.closed.Load() {
		return errClosed
	}
	ids := make([]int64, 0, len(versions))
	for id := range versions {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, cmp.Compare[int64])
	vs := make([]int64, len(ids))
	for i, id := range ids {
		vs[i] = int64(versions[id])
	}
	if _, err := p.pool.Exec(ctx, confirmWebhookSQL, receiver, ids, vs); err != nil {
		return wrapPgErr(err, "confirm webhook delivery of %d users", len(ids))
	}
	return nil
}

// WebhookDelivered forwards to the backend when it keeps a ledger.
func (l *Lazy) WebhookDelivered(ctx context.Context, receiver string, ids []int64) (map[int64]uint64, error) {
	led, err := l.ledger()
	if err != nil {
		return nil, err
	}
	return led.WebhookDelivered(ctx, receiver, ids)
}

// ConfirmWebhook forwards to the backend when it keeps a ledger.
func (l *Lazy) ConfirmWebhook(ctx context.Context, receiver string, versions map[int64]uint64) error {
	led, err := l.ledger()
	if err != nil {
		return err
	}
	return led.ConfirmWebhook(ctx, receiver, versions)
}

func (l *Lazy) ledger() (WebhookLedger, error) {
	s, err := l.get()
	if err != nil {
		return nil, err
	}
	led, ok := s.(WebhookLedger)
	if !ok {
		return nil, fmt.Errorf("store: %T keeps no webhook ledger", s)
	}
	return led, nil
}
