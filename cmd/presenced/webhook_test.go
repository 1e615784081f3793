package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

// TestWebhookConfig: the PRESENCE_WEBHOOK_* variables reach the node's
// configuration, and an unusable feed is refused naming the variable.
func TestWebhookConfig(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string
	}{
		{"off", nil, ""},
		{"on", map[string]string{
			"PRESENCE_WEBHOOK_URL":    "http://127.0.0.1:9000/a, https://backend.internal/b",
			"PRESENCE_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
			"PRESENCE_WEBHOOK_BATCH":  "50", "PRESENCE_WEBHOOK_FLUSH": "250ms", "PRESENCE_WEBHOOK_QUEUE": "500",
			"PRESENCE_WEBHOOK_TIMEOUT": "3s", "PRESENCE_WEBHOOK_MAX_BACKOFF": "30s",
		}, ""},
		{"no secret", map[string]string{"PRESENCE_WEBHOOK_URL": "http://127.0.0.1:9000/"}, "PRESENCE_WEBHOOK_SECRET"},
		{"short secret", map[string]string{"PRESENCE_WEBHOOK_URL": "http://x/", "PRESENCE_WEBHOOK_SECRET": "short"}, "PRESENCE_WEBHOOK_SECRET"},
		{"bad base64", map[string]string{"PRESENCE_WEBHOOK_URL": "http://x/", "PRESENCE_WEBHOOK_SECRET": "whsec_***"}, "PRESENCE_WEBHOOK_SECRET"},
		{"bad url", map[string]string{"PRESENCE_WEBHOOK_URL": "ftp://x/", "PRESENCE_WEBHOOK_SECRET": "a-secret-long-enough-1234"}, "PRESENCE_WEBHOOK_URL"},
		{"zero batch", map[string]string{"PRESENCE_WEBHOOK_BATCH": "0"}, "PRESENCE_WEBHOOK_BATCH"},
		{"bad flush", map[string]string{"PRESENCE_WEBHOOK_FLUSH": "-1s"}, "PRESENCE_WEBHOOK_FLUSH"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := loadConfig(nil, func(k string) string { return tc.env[k] }, io.Discard)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			w := cfg.Webhook
			if tc.env == nil {
				if w.Enabled() || w.Batch != 100 || w.Flush != time.Second {
					t.Fatalf("defaults %+v", w)
				}
				return
			}
			if len(w.URLs) != 2 || w.URLs[1] != "https://backend.internal/b" || w.Batch != 50 || w.Flush != 250*time.Millisecond ||
				w.Queue != 500 || w.Timeout != 3*time.Second || w.MaxBackoff != 30*time.Second {
				t.Fatalf("config %+v", w)
			}
		})
	}
}
