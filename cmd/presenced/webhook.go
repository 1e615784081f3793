package main

import (
	"errors"
	"fmt"

	"github.com/presence-cluster/presence/node"
	"github.com/presence-cluster/presence/webhook"
	"github.com/presence-cluster/presence/webhook/signing"
)

// webhookSettings are the change feed's knobs (README: "Change feed
// (webhooks)").
func webhookSettings(c *node.Config) []setting {
	w := &c.Webhook
	return []setting{
		{"webhook-url", "PRESENCE_WEBHOOK_URL", "comma-separated URLs that receive every visible change (default: off)", true, listValue{&w.URLs}},
		{"webhook-secret", "PRESENCE_WEBHOOK_SECRET", "signing secret: whsec_<base64> or raw (at least 16 bytes)", true, stringValue{&w.Secret}},
		{"webhook-batch", "PRESENCE_WEBHOOK_BATCH", "most events per webhook request", false, sizeValue{&w.Batch, 1, 10_000}},
		{"webhook-flush", "PRESENCE_WEBHOOK_FLUSH", "longest an event waits for its batch to fill", false, durationValue{&w.Flush, positive}},
		{"webhook-queue", "PRESENCE_WEBHOOK_QUEUE", "events queued per receiver; beyond: latest state per user only", false, sizeValue{&w.Queue, 1, 10_000_000}},
		{"webhook-timeout", "PRESENCE_WEBHOOK_TIMEOUT", "bound on one webhook request", false, durationValue{&w.Timeout, positive}},
		{"webhook-max-backoff", "PRESENCE_WEBHOOK_MAX_BACKOFF", "longest wait between retries of a failed webhook request", false, durationValue{&w.MaxBackoff, positive}},
	}
}

// checkWebhook refuses a change feed that cannot work, naming the variable.
func checkWebhook(c *node.Config) error {
	err := c.Webhook.Validate()
	switch {
	case err == nil:
		return nil
	case errors.Is(err, webhook.ErrNoSecret):
		return fmt.Errorf("PRESENCE_WEBHOOK_SECRET: %w", err)
	case c.Webhook.Secret != "":
		if _, serr := signing.ParseSecret(c.Webhook.Secret); serr != nil {
			return fmt.Errorf("PRESENCE_WEBHOOK_SECRET: %w", serr)
		}
	}
	return fmt.Errorf("PRESENCE_WEBHOOK_URL: %w", err)
}
