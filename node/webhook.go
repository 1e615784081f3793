package node

import (
	"context"

	"github.com/presence-cluster/presence/webhook"
)

// startFeed builds the change feed when webhook URLs are configured; the
// user actors then enqueue every visible change into it.
func (n *Node) startFeed() error {
	if !n.cfg.Webhook.Enabled() {
		return nil
	}
	f, err := webhook.New(n.cfg.Webhook, webhook.Deps{
		Ledger:     n.webhookLedger(),
		Registerer: n.metrics.reg,
		Logger:     n.log,
	})
	if err != nil {
		return err
	}
	n.feed = f
	f.Start()
	return nil
}

// webhookLedger is the store's ledger of delivered changes, which makes the
// feed crash-safe; only PostgreSQL keeps one (memory and bolt promise
// at-least-once while the node lives).
func (n *Node) webhookLedger() webhook.Ledger {
	if n.cfg.SharedStore != nil {
		led, _ := n.cfg.SharedStore.(webhook.Ledger)
		return led
	}
	if storeKind(n.cfg.Store) != "postgres" {
		return nil
	}
	led, _ := n.backend.(webhook.Ledger)
	return led
}

// stopFeed delivers what is queued (bounded by the feed's drain time and
// ctx) and stops the feed. A receiver that is down does not fail the
// shutdown: the feed logs what it left undelivered.
func (n *Node) stopFeed(ctx context.Context) {
	if n.feed != nil {
		n.feed.Close(ctx)
	}
}

// Feed returns the node's change feed, nil when no webhook is configured.
func (n *Node) Feed() *webhook.Feed { return n.feed }
