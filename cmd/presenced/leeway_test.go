package main

import (
	"io"
	"testing"
	"time"

	"github.com/presence-cluster/presence/node"
)

// PRESENCE_JWT_LEEWAY=0s must mean no leeway, not the default that a zero
// field of node.Config stands for.
func TestJWTLeewaySetting(t *testing.T) {
	for _, tc := range []struct {
		env     string
		want    time.Duration
		printed string
		bad     bool
	}{
		{env: "", want: node.DefaultJWTLeeway, printed: "30s"},
		{env: "0s", want: node.NoJWTLeeway, printed: "0s"},
		{env: "0", want: node.NoJWTLeeway, printed: "0s"},
		{env: "5s", want: 5 * time.Second, printed: "5s"},
		{env: "-1s", bad: true},
		{env: "soon", bad: true},
	} {
		cfg, err := loadConfig(nil, func(k string) string {
			if k == "PRESENCE_JWT_LEEWAY" {
				return tc.env
			}
			return ""
		}, io.Discard)
		if tc.bad {
			if err == nil {
				t.Errorf("PRESENCE_JWT_LEEWAY=%q accepted as %v", tc.env, cfg.Auth.Leeway)
			}
			continue
		}
		if err != nil || cfg.Auth.Leeway != tc.want {
			t.Errorf("PRESENCE_JWT_LEEWAY=%q: %v, %v; want %v", tc.env, cfg.Auth.Leeway, err, tc.want)
		}
		if got := (durationValue{&cfg.Auth.Leeway, zeroMeansNone}).String(); got != tc.printed {
			t.Errorf("PRESENCE_JWT_LEEWAY=%q prints %q, want %q", tc.env, got, tc.printed)
		}
	}
}
