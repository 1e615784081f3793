package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/presence-cluster/presence/webhook/signing"
)

const testWebhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// TestWebhookListener: a signed batch is printed once per (user_id,
// version); a repeat is reported as a duplicate; a request signed with
// another secret is rejected with 401 and prints nothing of its events.
func TestWebhookListener(t *testing.T) {
	signer, _ := signing.NewSigner(testWebhookSecret)
	other, _ := signing.NewSigner("another-secret-of-enough-length")
	var out bytes.Buffer
	l := &webhookListener{signer: signer, out: &out, seen: map[[2]uint64]bool{}}
	srv := httptest.NewServer(l)
	defer srv.Close()
	body := `{"events":[{"type":"presence_update","data":{"user_id":42,"username":"alice","is_online":true,"is_busy":false,"busy_until":null,"last_seen":null,"version":7},"timestamp":"2026-12-06T10:00:00Z"}]}`
	post := func(s *signing.Signer, id string) int {
		now := time.Now()
		req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(body))
		req.Header.Set(signing.HeaderID, id)
		req.Header.Set(signing.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
		req.Header.Set(signing.HeaderSignature, s.Sign(id, now, []byte(body)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	tests := []struct {
		signer *signing.Signer
		id     string
		code   int
		want   string
	}{
		{signer, "msg_1", http.StatusNoContent, `msg_1 2026-12-06T10:00:00Z {"user_id":42,"username":"alice"`},
		{signer, "msg_1", http.StatusNoContent, "msg_1: user 42 version 7 again (duplicate, ignored)"},
		{other, "msg_2", http.StatusUnauthorized, "msg_2: rejected: webhook: no matching signature"},
	}
	for _, tc := range tests {
		out.Reset()
		if code := post(tc.signer, tc.id); code != tc.code {
			t.Errorf("%s: status %d, want %d", tc.id, code, tc.code)
		}
		if !strings.HasPrefix(out.String(), tc.want) {
			t.Errorf("%s: printed %q, want it to start with %q", tc.id, out.String(), tc.want)
		}
	}
}

func TestWebhookListenRefusesBadSecret(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"webhook-listen", "--secret", "short"}, &out, &errb); code != 2 {
		t.Fatalf("exit %d, want 2 (usage); stderr %s", code, errb.String())
	}
}
