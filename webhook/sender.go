package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/presence-cluster/presence/webhook/signing"
	"github.com/presence-cluster/presence/wire"
)

// maxDrainBody bounds how much of a receiver's answer is read (so the
// connection can be reused) before it is closed.
const maxDrainBody = 64 << 10

// sender delivers the queue of one receiver, one batch at a time: a batch
// is retried until accepted before the next is taken, which keeps each
// user's events in version order.
type sender struct {
	f   *Feed
	url string
	// name is url without its password: the metrics label, the log
	// field and the ledger key (a rotated password keeps the ledger).
	name  string
	q     *queue
	batch []item
	body  []byte
	// inflight is the size of the batch being delivered (part of Depth).
	inflight atomic.Int64
}

func newSender(f *Feed, raw string) *sender {
	name := raw
	if u, err := url.Parse(raw); err == nil {
		name = u.Redacted()
	}
	return &sender{f: f, url: raw, name: name, q: newQueue(f.cfg.Queue)}
}

func (s *sender) run() {
	for {
		if !s.collect() {
			return
		}
		s.filterDelivered()
		if len(s.batch) == 0 {
			continue
		}
		s.body = appendBatch(s.body[:0], s.batch)
		s.inflight.Store(int64(len(s.batch)))
		if !s.deliver(newMessageID(), s.body) {
			return
		}
		s.accepted()
		s.inflight.Store(0)
	}
}

// collect waits for events and fills s.batch: up to Batch events, waiting
// at most Flush after the first one for more (none during a drain). It
// returns false when the feed stops, or drains with nothing left.
func (s *sender) collect() bool {
	cfg := s.f.cfg
	s.batch = s.batch[:0]
	var flush <-chan time.Time
	for {
		var caughtUp bool
		s.batch, caughtUp = s.q.take(s.batch, cfg.Batch)
		if caughtUp {
			s.f.log.Info("webhook receiver caught up", slog.String("receiver", s.name))
		}
		if len(s.batch) >= cfg.Batch {
			return true
		}
		if len(s.batch) > 0 && flush == nil {
			t := time.NewTimer(cfg.Flush)
			defer t.Stop()
			flush = t.C
		}
		select {
		case <-s.f.stop:
			return false
		case <-s.f.drain:
			if len(s.batch) == 0 && s.q.depth() == 0 {
				return false
			}
			if len(s.batch) > 0 {
				return true
			}
			continue // pushed since take: take it
		case <-s.q.wake:
		case <-flush:
			return true
		}
	}
}

// filterDelivered drops the activation checks whose state the ledger shows
// delivered. A ledger error keeps them: a duplicate is allowed, a loss not.
func (s *sender) filterDelivered() {
	var ids []int64
	for _, it := range s.batch {
		if it.check {
			ids = append(ids, it.st.GetUserId())
		}
	}
	if len(ids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.f.cfg.Timeout)
	done, err := s.f.ledger.WebhookDelivered(ctx, s.name, ids)
	cancel()
	if err != nil {
		s.f.log.Warn("webhook ledger read failed; delivering activated users again", slog.Any("err", err))
		return
	}
	kept := s.batch[:0]
	for _, it := range s.batch {
		if !it.check || done[it.st.GetUserId()] < it.st.GetVersion() {
			kept = append(kept, it)
		}
	}
	clear(s.batch[len(kept):])
	s.batch = kept
}

// deliver posts body until the receiver accepts it, with capped
// exponential backoff and jitter between attempts; every attempt carries
// the same webhook-id. It returns false if the feed stopped first.
func (s *sender) deliver(id string, body []byte) bool {
	for attempt := 0; ; attempt++ {
		reason, err := s.post(id, body)
		if err == nil {
			return true
		}
		s.f.m.failed.WithLabelValues(s.name, reason).Inc()
		wait := backoff(attempt, s.f.cfg.MinBackoff, s.f.cfg.MaxBackoff)
		if attempt == 0 || attempt%10 == 0 {
			s.f.log.Warn("webhook delivery failed, retrying", slog.String("receiver", s.name),
				slog.String("webhook_id", id), slog.Int("attempt", attempt+1), slog.Duration("wait", wait), slog.Any("err", err))
		}
		t := time.NewTimer(wait)
		select {
		case <-s.f.stop:
			t.Stop()
			return false
		case <-t.C:
		}
		s.f.m.retries.WithLabelValues(s.name).Inc()
	}
}

// post sends one attempt, signed now; reason says why it failed.
func (s *sender) post(id string, body []byte) (reason string, err error) {
	now := time.Now()
	req, err := http.NewRequest(http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return ReasonNetwork, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(signing.HeaderID, id)
	req.Header.Set(signing.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(signing.HeaderSignature, s.f.signer.Sign(id, now, body))
	resp, err := s.f.client.Do(req)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return ReasonTimeout, err
		}
		return ReasonNetwork, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrainBody))
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return ReasonStatus, fmt.Errorf("receiver answered %s", resp.Status)
	}
	return "", nil
}

// accepted counts a delivered batch and records it in the ledger.
func (s *sender) accepted() {
	now := time.Now()
	s.f.m.delivered.WithLabelValues(s.name).Add(float64(len(s.batch)))
	lag := s.f.m.lag.WithLabelValues(s.name)
	for _, it := range s.batch {
		lag.Observe(now.Sub(time.UnixMicro(it.st.GetUpdatedAt())).Seconds())
	}
	if s.f.ledger == nil {
		return
	}
	versions := make(map[int64]uint64, len(s.batch))
	for _, it := range s.batch {
		id := it.st.GetUserId()
		versions[id] = max(versions[id], it.st.GetVersion())
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.f.cfg.Timeout)
	defer cancel()
	if err := s.f.ledger.ConfirmWebhook(ctx, s.name, versions); err != nil {
		// Not fatal: the next owner may deliver these again (a duplicate).
		s.f.log.Warn("webhook ledger write failed", slog.String("receiver", s.name), slog.Any("err", err))
	}
}

// backoff is the wait before attempt+1: min doubled per attempt, capped at
// max, with jitter over its upper half so receivers coming back are not hit
// by every node at once.
func backoff(attempt int, min, max time.Duration) time.Duration {
	d := min
	for i := 0; i < attempt && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	half := d / 2
	return half + rand.N(half+1)
}

// appendBatch encodes {"events": [presence_update frames]}, each stamped
// with the time of its change.
func appendBatch(b []byte, batch []item) []byte {
	b = append(b, `{"events":[`...)
	for i, it := range batch {
		if i > 0 {
			b = append(b, ',')
		}
		b = wire.AppendUpdateFrame(b, it.st, time.UnixMicro(it.st.GetUpdatedAt()))
	}
	return append(b, "]}"...)
}
