package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/presence-cluster/presence/node"
)

// signHS signs claims with an HMAC algorithm (HS256, HS384, HS512).
func signHS(t *testing.T, alg string, secret []byte, claims map[string]any) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.GetSigningMethod(alg), jwt.MapClaims(claims)).SignedString(secret)
	if err != nil {
		t.Fatalf("sign %s: %v", alg, err)
	}
	return tok
}

// TestUnauthorized: every way a token can be wrong is the same 401 with
// WWW-Authenticate: Bearer, on every authenticated endpoint, before any
// other check (body, admin role, path).
func TestUnauthorized(t *testing.T) {
	n := startNode(t, node.Config{})
	now := time.Now()
	valid := func() map[string]any {
		return map[string]any{"sub": "7", "username": "mallory", "exp": now.Add(time.Hour).Unix(), "iat": now.Unix(), "is_admin": true}
	}
	with := func(k string, v any) map[string]any {
		c := valid()
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	withUserID := func(v any) map[string]any {
		c := with("sub", nil)
		c["user_id"] = v
		return c
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signWith := func(m jwt.SigningMethod, key any) string {
		tok, err := jwt.NewWithClaims(m, jwt.MapClaims(valid())).SignedString(key)
		if err != nil {
			t.Fatalf("sign %s: %v", m.Alg(), err)
		}
		return tok
	}
	critTok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(valid()))
	critTok.Header["crit"] = []string{"exp"}
	crit, err := critTok.SignedString([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	good := signHS(t, "HS256", []byte(testSecret), valid())
	parts := strings.Split(good, ".")
	// The same signature over a payload that says sub 8.
	forgedPayload := base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"8","exp":` + strconv.FormatInt(now.Add(time.Hour).Unix(), 10) + `,"is_admin":true}`))
	// An HS256 token whose header lies about the algorithm.
	noneHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))

	tokens := []struct {
		name   string
		header string // the whole Authorization header; "-" for none
	}{
		{"no header", "-"},
		{"empty header", ""},
		{"bearer without token", "Bearer"},
		{"bearer and spaces", "Bearer    "},
		{"basic scheme", "Basic dXNlcjpwYXNz"},
		{"token without scheme", good},
		{"garbage", "Bearer not-a-jwt"},
		{"three garbage parts", "Bearer aaa.bbb.ccc"},
		{"expired", "Bearer " + signHS(t, "HS256", []byte(testSecret), with("exp", now.Add(-time.Hour).Unix()))},
		{"no exp", "Bearer " + signHS(t, "HS256", []byte(testSecret), with("exp", nil))},
		{"not yet valid", "Bearer " + signHS(t, "HS256", []byte(testSecret), with("nbf", now.Add(time.Hour).Unix()))},
		{"other secret", "Bearer " + signHS(t, "HS256", []byte("another-secret-entirely"), valid())},
		{"HS512 with the right secret", "Bearer " + signHS(t, "HS512", []byte(testSecret), valid())},
		{"HS384 with the right secret", "Bearer " + signHS(t, "HS384", []byte(testSecret), valid())},
		{"RS256", "Bearer " + signWith(jwt.SigningMethodRS256, rsaKey)},
		{"ES256", "Bearer " + signWith(jwt.SigningMethodES256, ecKey)},
		{"alg none", "Bearer " + signWith(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType)},
		{"alg none header on HS256 signature", "Bearer " + noneHeader + "." + parts[1] + "." + parts[2]},
		{"alg none header without signature", "Bearer " + noneHeader + "." + parts[1] + "."},
		{"tampered payload", "Bearer " + parts[0] + "." + forgedPayload + "." + parts[2]},
		{"truncated signature", "Bearer " + good[:len(good)-4]},
		{"non-numeric sub", "Bearer " + signHS(t, "HS256", []byte(testSecret), with("sub", "abc"))},
		{"zero sub", "Bearer " + signHS(t, "HS256", []byte(testSecret), with("sub", "0"))},
		{"negative sub", "Bearer " + signHS(t, "HS256", []byte(testSecret), with("sub", "-5"))},
		{"crit header", "Bearer " + crit},
		{"no sub", "Bearer " + signHS(t, "HS256", []byte(testSecret), with("sub", nil))},
		{"non-numeric user_id", "Bearer " + signHS(t, "HS256", []byte(testSecret), withUserID("abc"))},
		{"fractional user_id", "Bearer " + signHS(t, "HS256", []byte(testSecret), withUserID(1.5))},
	}

	endpoints := []struct {
		method, path, body string
	}{
		{http.MethodGet, "/users/me/status", ""},
		{http.MethodPut, "/users/me/status", `{}`},
		{http.MethodPut, "/users/me/status", `not json`},
		{http.MethodPost, "/users/me/heartbeat", ""},
		{http.MethodGet, "/users/7/presence", ""},
		{http.MethodGet, "/users/abc/presence", ""},
		{http.MethodGet, "/users/presence?user_ids=7", ""},
		{http.MethodGet, "/users/presence?user_ids=x", ""},
		{http.MethodPost, "/admin/cleanup-presence", ""},
	}
	for _, tok := range tokens {
		t.Run(tok.name, func(t *testing.T) {
			for _, ep := range endpoints {
				req, err := http.NewRequest(ep.method, n.Base+ep.path, strings.NewReader(ep.body))
				if err != nil {
					t.Fatal(err)
				}
				if tok.header != "-" {
					req.Header.Set("Authorization", tok.header)
				}
				res, err := n.HTTP.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				r := readResponse(t, res)
				if r.Code != http.StatusUnauthorized || r.Header.Get("WWW-Authenticate") != "Bearer" {
					t.Errorf("%s %s: %d WWW-Authenticate %q, want 401 Bearer; body %s",
						ep.method, ep.path, r.Code, r.Header.Get("WWW-Authenticate"), r.Body)
					continue
				}
				expectDetail(t, r, http.StatusUnauthorized, "Invalid or expired token")
			}
		})
	}
	// None of those calls created user 7 (or 8).
	u := n.user(t, 1, "u")
	expectDetail(t, u.presenceRaw("7"), http.StatusNotFound, "User status not found")
	expectDetail(t, u.presenceRaw("8"), http.StatusNotFound, "User status not found")
}

// TestIdentityClaims: the user id comes from sub or a numeric user_id, the
// name from username or preferred_username; a lower-case scheme is fine.
func TestIdentityClaims(t *testing.T) {
	n := startNode(t, node.Config{})
	now := time.Now()
	base := func() map[string]any {
		return map[string]any{"exp": now.Add(time.Hour).Unix(), "iat": now.Unix()}
	}
	for _, tc := range []struct {
		name   string
		claims map[string]any
		id     int64
		user   string
	}{
		{"sub and username", map[string]any{"sub": "501", "username": "ann"}, 501, "ann"},
		{"numeric user_id", map[string]any{"user_id": 502, "preferred_username": "bob"}, 502, "bob"},
		{"string user_id with uuid sub", map[string]any{"sub": "5b1e0c6e-uuid", "user_id": "503", "username": "cy"}, 503, "cy"},
		{"username wins over preferred_username", map[string]any{"sub": "504", "username": "dee", "preferred_username": "other"}, 504, "dee"},
		{"largest id", map[string]any{"sub": "9223372036854775807", "username": "max"}, 9223372036854775807, "max"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			for k, v := range tc.claims {
				c[k] = v
			}
			cl := n.withToken(t, signHS(t, "HS256", []byte(testSecret), c))
			st := cl.getStatus()
			if st.UserID != tc.id {
				t.Fatalf("user_id %d, want %d", st.UserID, tc.id)
			}
			if p := n.user(t, 1, "x").on(t).presence(tc.id); p.Username != tc.user {
				t.Fatalf("username %q, want %q", p.Username, tc.user)
			}
		})
	}
	// "bearer" in lower case is the same scheme.
	req, _ := http.NewRequest(http.MethodGet, n.Base+"/users/me/status", nil)
	req.Header.Set("Authorization", "bearer "+mint(t, 505, "eve", false))
	res, err := n.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if st := decodeStatus(t, expectOK(t, readResponse(t, res))); st.UserID != 505 {
		t.Fatalf("lower-case bearer: user %d", st.UserID)
	}
}
