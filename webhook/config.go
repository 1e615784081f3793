// Package webhook is the change feed for backends: every visible change of
// a user's presence (exactly what is pushed over WebSocket) is POSTed to
// each configured URL as a signed JSON batch, per the Standard Webhooks
// specification.
//
// Delivery is at least once and in version order per user: each receiver
// URL has one sender goroutine that sends one batch at a time and retries a
// failed batch (same webhook-id) with capped exponential backoff and jitter
// until the receiver accepts it. The user actors only enqueue (never wait);
// the queue of each receiver is bounded, and what overflows is kept as the
// latest state per user and delivered when the receiver catches up, so a
// receiver may miss intermediate versions then, never the latest one.
//
// With a Ledger (the PostgreSQL store), every accepted batch is recorded
// per receiver and user, and a user activated on a new owner (after a move
// or a crash) is delivered again if the ledger shows its stored version
// undelivered.
package webhook

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/presence-cluster/presence/webhook/signing"
)

// Defaults for Config; they match the PRESENCE_WEBHOOK_* defaults in the
// README.
const (
	DefaultBatch      = 100
	DefaultFlush      = time.Second
	DefaultQueue      = 10000
	DefaultTimeout    = 10 * time.Second
	DefaultMaxBackoff = time.Minute
	DefaultMinBackoff = 250 * time.Millisecond
	DefaultDrain      = 5 * time.Second
)

// Config configures the change feed. With no URLs the feed is off.
type Config struct {
	// URLs receive every batch; each has its own queue and sender.
	URLs []string
	// Secret signs the requests: "whsec_<base64>" (decoded) or raw bytes.
	Secret string
	// Batch is the most events one request carries.
	Batch int
	// Flush is how long the first event of a batch waits for more before
	// the batch is sent.
	Flush time.Duration
	// Queue bounds the events waiting for one receiver; beyond it only
	// the latest state of each user is kept (catch-up).
	Queue int
	// Timeout bounds one request.
	Timeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between attempts of a
	// failed batch (exponential, with jitter).
	MinBackoff, MaxBackoff time.Duration
	// Drain is how long a graceful stop keeps delivering what is queued.
	Drain time.Duration
}

// DefaultConfig returns a Config with every default filled in and no URL
// (the feed off).
func DefaultConfig() Config {
	return Config{
		Batch:      DefaultBatch,
		Flush:      DefaultFlush,
		Queue:      DefaultQueue,
		Timeout:    DefaultTimeout,
		MinBackoff: DefaultMinBackoff,
		MaxBackoff: DefaultMaxBackoff,
		Drain:      DefaultDrain,
	}
}

// Enabled reports whether any receiver is configured.
func (c Config) Enabled() bool { return len(c.URLs) > 0 }

// withDefaults fills the zero fields of c from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	setDefault(&c.Batch, d.Batch)
	setDefault(&c.Flush, d.Flush)
	setDefault(&c.Queue, d.Queue)
	setDefault(&c.Timeout, d.Timeout)
	setDefault(&c.MinBackoff, d.MinBackoff)
	setDefault(&c.MaxBackoff, d.MaxBackoff)
	c.MaxBackoff = max(c.MaxBackoff, c.MinBackoff)
	setDefault(&c.Drain, d.Drain)
	return c
}

// setDefault sets *p to v when *p is zero or negative.
func setDefault[T int | time.Duration](p *T, v T) {
	if *p <= 0 {
		*p = v
	}
}

// ErrNoSecret: URLs are configured without a secret to sign with.
var ErrNoSecret = errors.New("webhook URLs need a secret to sign requests with")

// Validate checks a configuration that has URLs: each is an absolute
// http(s) URL and the secret is usable. Loopback and private addresses are
// allowed on purpose (the operator chose them).
func (c Config) Validate() error {
	if !c.Enabled() {
		return nil
	}
	for _, raw := range c.URLs {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("webhook URL %q: want an absolute http:// or https:// URL", raw)
		}
	}
	if c.Secret == "" {
		return ErrNoSecret
	}
	if _, err := signing.ParseSecret(c.Secret); err != nil {
		return err
	}
	return nil
}
