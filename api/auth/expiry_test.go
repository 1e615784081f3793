package auth

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func signHS(t *testing.T, secret []byte, exp time.Time) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "42", "iat": exp.Add(-time.Hour).Unix(), "exp": exp.Unix(),
	}).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// VerifyExpiry returns the token's exp (without the leeway), from the
// cache too; Leeway reads the configuration as documented, and NoLeeway
// refuses a token the moment its exp passes.
func TestVerifyExpiryAndLeeway(t *testing.T) {
	secret := []byte("expiry-test-secret-0123456789abcdef")
	for _, tc := range []struct {
		cfg  time.Duration
		want time.Duration
	}{{0, DefaultLeeway}, {NoLeeway, 0}, {-time.Hour, 0}, {5 * time.Second, 5 * time.Second}} {
		v, err := NewVerifier(Config{Secret: secret, Leeway: tc.cfg})
		if err != nil {
			t.Fatal(err)
		}
		if got := v.Leeway(); got != tc.want {
			t.Errorf("Config.Leeway %v: Leeway() = %v, want %v", tc.cfg, got, tc.want)
		}
		exp := time.Now().Add(time.Hour).Truncate(time.Second)
		tok := signHS(t, secret, exp)
		for _, pass := range []string{"parsed", "cached"} {
			id, got, err := v.VerifyExpiry(tok)
			if err != nil || id.UserID != 42 || !got.Equal(exp) {
				t.Errorf("Config.Leeway %v, %s: VerifyExpiry = %+v, %v, %v; want user 42, exp %v", tc.cfg, pass, id, got, err, exp)
			}
		}
		// Expired two seconds ago: only a leeway accepts it.
		_, _, err = v.VerifyExpiry(signHS(t, secret, time.Now().Add(-2*time.Second)))
		if accepted := err == nil; accepted != (tc.want > 2*time.Second) {
			t.Errorf("Config.Leeway %v: a token expired 2s ago accepted=%v", tc.cfg, accepted)
		}
	}
}
