package store_test

import (
	"context"
	"maps"
	"testing"

	"github.com/presence-cluster/presence/store"
)

// TestPostgresWebhookLedger: the change feed's ledger keeps, per receiver
// and user, the highest confirmed version: a lower confirmation does not
// lower it, receivers are independent, and users never confirmed are
// absent (so a new owner treats them as undelivered).
func TestPostgresWebhookLedger(t *testing.T) {
	p := openPostgres(t, freshSchema(t), store.PostgresOptions{MaxConns: 4})
	var led store.WebhookLedger = p
	ctx := context.Background()
	steps := []struct {
		receiver string
		confirm  map[int64]uint64
	}{
		{"http://a/hook", map[int64]uint64{1: 5, 2: 7}},
		{"http://a/hook", map[int64]uint64{1: 3, 2: 9}}, // 1 must stay 5
		{"http://b/hook", map[int64]uint64{1: 1}},
	}
	for _, s := range steps {
		if err := led.ConfirmWebhook(ctx, s.receiver, s.confirm); err != nil {
			t.Fatalf("ConfirmWebhook(%s, %v): %v", s.receiver, s.confirm, err)
		}
	}
	tests := []struct {
		receiver string
		ids      []int64
		want     map[int64]uint64
	}{
		{"http://a/hook", []int64{1, 2, 3}, map[int64]uint64{1: 5, 2: 9}},
		{"http://b/hook", []int64{1, 2}, map[int64]uint64{1: 1}},
		{"http://c/hook", []int64{1}, map[int64]uint64{}},
	}
	for _, tc := range tests {
		got, err := led.WebhookDelivered(ctx, tc.receiver, tc.ids)
		if err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(got, tc.want) {
			t.Errorf("WebhookDelivered(%s, %v) = %v, want %v", tc.receiver, tc.ids, got, tc.want)
		}
	}
}
