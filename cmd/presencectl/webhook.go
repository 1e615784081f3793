package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/presence-cluster/presence/webhook/signing"
	"github.com/presence-cluster/presence/wire"
)

// maxWebhookBody bounds one request the listener reads.
const maxWebhookBody = 4 << 20

// runWebhookListen runs a change-feed receiver that verifies each request's
// signature, dedupes events by (user_id, version) and prints one line per
// new event: a way to try the feed, and to test it.
func runWebhookListen(args []string, stdout, stderr io.Writer) error {
	flags := newFlagSet("webhook-listen", "[--addr 127.0.0.1:9000] [--secret whsec_...] [--count N]", stderr)
	var (
		addr   = flags.String("addr", "127.0.0.1:9000", "listen address; point PRESENCE_WEBHOOK_URL at http://<addr>/")
		secret = flags.String("secret", envOr("PRESENCE_WEBHOOK_SECRET", ""), "signing secret, as the node's (env PRESENCE_WEBHOOK_SECRET)")
		count  = flags.Int("count", 0, "exit after this many new events (0: run until interrupted)")
		status = flags.Int("status", 0, "answer every request with this status instead (e.g. 500 to watch retries)")
	)
	if err := parseFlags(flags, args); err != nil {
		return err
	}
	signer, err := signing.NewSigner(*secret)
	if err != nil {
		return usageErrorf(flags, "--secret: %v", err)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	l := &webhookListener{signer: signer, out: stdout, status: *status, seen: map[[2]uint64]bool{}}
	if *count > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		l.left, l.done = *count, cancel
	}
	srv := &http.Server{Handler: l, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stderr, "listening on http://%s/\n", ln.Addr())
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		return err
	}
	return nil
}

// webhookListener is the handler of webhook-listen.
type webhookListener struct {
	signer *signing.Signer
	out    io.Writer
	status int

	mu   sync.Mutex
	seen map[[2]uint64]bool
	left int
	done func()
}

func (l *webhookListener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxWebhookBody))
	if err != nil {
		return
	}
	id := r.Header.Get(signing.HeaderID)
	if l.status != 0 {
		l.printf("%s: answered %d\n", id, l.status)
		w.WriteHeader(l.status)
		return
	}
	if err := l.signer.Verify(id, r.Header.Get(signing.HeaderTimestamp), r.Header.Get(signing.HeaderSignature), body, time.Now(), 5*time.Minute); err != nil {
		l.printf("%s: rejected: %v\n", id, err)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var batch wire.WebhookBatch
	if err := json.Unmarshal(body, &batch); err != nil {
		l.printf("%s: rejected: %v\n", id, err)
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	l.record(id, batch)
	w.WriteHeader(http.StatusNoContent)
}

func (l *webhookListener) record(id string, batch wire.WebhookBatch) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ev := range batch.Events {
		d := ev.Data
		if d == nil {
			continue
		}
		key := [2]uint64{uint64(d.UserID), d.Version}
		if l.seen[key] {
			fmt.Fprintf(l.out, "%s: user %d version %d again (duplicate, ignored)\n", id, d.UserID, d.Version)
			continue
		}
		l.seen[key] = true
		line, _ := json.Marshal(d)
		fmt.Fprintf(l.out, "%s %s %s\n", id, ev.Timestamp.UTC().Format(time.RFC3339Nano), line)
		if l.done != nil {
			if l.left--; l.left == 0 {
				l.done()
			}
		}
	}
}

func (l *webhookListener) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.out, format, args...)
}
