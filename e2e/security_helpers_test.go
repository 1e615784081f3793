package e2e

// Helpers of security_test.go. Every name here starts with sec so nothing
// collides with the other test files of the package.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/golang-jwt/jwt/v5"

	"github.com/presence-cluster/presence/api"
	"github.com/presence-cluster/presence/api/auth"
	"github.com/presence-cluster/presence/node"

	"github.com/presence-cluster/presence/internal/testkit"
)

// secInvalidToken is the only answer a bad token may get.
const secInvalidToken = `{"detail":"Invalid or expired token"}`

// ---------------------------------------------------------------- nodes

// secStartNode starts a node as startNode does; with JWTPublicKeys set
// the node gets no HS256 test secret (startNode leaves it out then).
func secStartNode(t *testing.T, cfg node.Config) *testNode {
	t.Helper()
	return startNode(t, cfg)
}

// secServer is an api.Server of our own on loopback, in front of the user
// actors of node n (through n's Router). It exists for the settings
// node.Config does not expose (ReadTimeout, IdleTimeout, HeaderLimit)
// and for a Verifier the test holds (to call Reload). Its hub lives in its
// own actor system, so it serves REST only: do not open WebSockets on it.
type secServer struct {
	srv  *api.Server
	addr string
	base string
	http *http.Client
}

func secStartServer(t *testing.T, n *testNode, cfg api.Config, v *auth.Verifier) *secServer {
	t.Helper()
	if v == nil {
		var err error
		if v, err = auth.NewVerifier(auth.Config{Secret: []byte(testSecret)}); err != nil {
			t.Fatalf("verifier: %v", err)
		}
	}
	if cfg.WriteRate == 0 {
		cfg.WriteRate = -1
	}
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.DiscardHandler)
	}))
	deps := api.Deps{Presence: n.Router(), Router: n.Router(), Verifier: v, System: system, Logger: slog.New(slog.DiscardHandler)}
	s, err := api.New(cfg, deps)
	if err != nil {
		t.Fatalf("api.New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = s.Serve(ln)
	}()
	hc := &http.Client{Timeout: 10 * time.Second}
	t.Cleanup(func() {
		hc.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
		<-served
		system.Shutdown()
	})
	return &secServer{srv: s, addr: ln.Addr().String(), base: "http://" + ln.Addr().String(), http: hc}
}

// client returns a REST client of s that sends token.
func (s *secServer) client(t *testing.T, token string) *client {
	return newClient(t, s.base, s.http, token)
}

// ---------------------------------------------------------------- raw HTTP

// secRaw writes req as is on a fresh TCP connection and reads one
// response. A connection the server closes without answering is an error.
func secRaw(addr, req string, timeout time.Duration) (*response, error) {
	return testkit.RawHTTP(addr, req, timeout)
}

// secReadToEnd reads conn until the server closes it (or limit passes) and
// returns what arrived and when the connection ended.
func secReadToEnd(conn net.Conn, limit time.Duration) (data []byte, ended time.Time, closed bool) {
	_ = conn.SetReadDeadline(time.Now().Add(limit))
	data, err := io.ReadAll(conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return data, time.Now(), false
	}
	return data, time.Now(), true
}

// ---------------------------------------------------------------- leak checks

// secInternals are fragments that must never reach a client: runtime and
// panic text, stack traces, Go type names, source paths, library and
// driver names, and parser dumps that echo the request.
var secInternals = []string{
	"runtime", "panic", "goroutine", "pgx", "bolt", "bbolt", "fasthttp", "fiber", "protoactor",
	"memberlist", "github.com", "golang.org", ".go:", "/root/", "/home/", "/work/", "/tmp/",
	"error when reading", "buffer size", "contents:", "http/1.1", "json: ", "invalid character",
	"unexpected end of json", "cannot unmarshal", "strconv.", "hex number", "nil pointer", "<nil>",
	"%!", "0x",
}

// secGoTypeName matches a qualified Go type or function name such as
// *fiber.Error, json.Number or api.errValidation.
var secGoTypeName = regexp.MustCompile(`\*?\b[a-z][a-z0-9]*\.[A-Za-z_][A-Za-z0-9_]*\b`)

// secLeak returns why body leaks internals, or "" when it does not; body
// must be a JSON object whose only member is a non-empty "detail" string.
func secLeak(body []byte, secrets ...string) string {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil {
		return "body is not a JSON object"
	}
	raw, ok := obj["detail"]
	if !ok || len(obj) != 1 {
		return `body is not {"detail": ...} alone`
	}
	var detail string
	if err := json.Unmarshal(raw, &detail); err != nil || detail == "" {
		return "detail is not a non-empty string"
	}
	low := strings.ToLower(detail)
	for _, bad := range secInternals {
		if strings.Contains(low, bad) {
			return "detail contains " + `"` + bad + `"`
		}
	}
	if m := secGoTypeName.FindString(detail); m != "" {
		return "detail contains a Go-like qualified name " + `"` + m + `"`
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(detail, s) {
			return "detail echoes a secret of the request"
		}
	}
	return ""
}

// secExpectClean asserts an error answer of status code whose body is
// {"detail": "..."} with an application/json Content-Type and no internal
// text.
func secExpectClean(t *testing.T, what string, r *response, code int, secrets ...string) {
	t.Helper()
	if r.Code != code {
		t.Errorf("%s: status %d, want %d; body %q", what, r.Code, code, r.Body)
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: Content-Type %q, want application/json; body %q", what, ct, r.Body)
	}
	if why := secLeak(r.Body, secrets...); why != "" {
		t.Errorf("%s: %d %q: %s", what, r.Code, r.Body, why)
	}
}

// secExpectInvalidToken asserts the one answer for every bad token: 401,
// exactly {"detail":"Invalid or expired token"}, WWW-Authenticate: Bearer.
func secExpectInvalidToken(t *testing.T, what string, r *response) {
	t.Helper()
	if r.Code != http.StatusUnauthorized {
		t.Errorf("%s: status %d, want 401; body %s", what, r.Code, r.Body)
		return
	}
	if string(r.Body) != secInvalidToken {
		t.Errorf("%s: body %q, want %s", what, r.Body, secInvalidToken)
	}
	if got := r.Header.Get("WWW-Authenticate"); got != "Bearer" {
		t.Errorf("%s: WWW-Authenticate %q, want Bearer", what, got)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q", what, ct)
	}
}

// ---------------------------------------------------------------- keys and tokens

var (
	secRSAOnce sync.Once
	secRSAKeys [3]*rsa.PrivateKey
	secRSAErr  error
)

// secRSA returns one of three 2048-bit RSA keys generated once per test
// binary (generation is slow under -race).
func secRSA(t *testing.T, i int) *rsa.PrivateKey {
	t.Helper()
	secRSAOnce.Do(func() {
		for k := range secRSAKeys {
			if secRSAKeys[k], secRSAErr = rsa.GenerateKey(rand.Reader, 2048); secRSAErr != nil {
				return
			}
		}
	})
	if secRSAErr != nil {
		t.Fatalf("rsa key: %v", secRSAErr)
	}
	return secRSAKeys[i]
}

func secECKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("ec key: %v", err)
	}
	return k
}

// secPublicPEM is the PKIX PEM of pub: the file an operator points
// PRESENCE_JWT_PUBLIC_KEYS at, and the bytes an attacker who knows the
// public key uses as an HMAC secret in the HS/RS confusion attack.
func secPublicPEM(t *testing.T, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatalf("marshal public key: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// secWriteFile writes data to dir/name and returns the path.
func secWriteFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatalf("write %s: %v", p, err)
	}
	return p
}

// secReplaceFile atomically replaces path with data (write, then rename),
// as a key-rotation job would.
func secReplaceFile(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatalf("write %s: %v", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatalf("rename: %v", err)
	}
}

// secJWKS is a JWKS document of RSA keys by kid.
func secJWKS(t *testing.T, keys map[string]*rsa.PublicKey) []byte {
	t.Helper()
	var list []map[string]string
	for kid, k := range keys {
		list = append(list, map[string]string{
			"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
			"n": base64.RawURLEncoding.EncodeToString(k.N.Bytes()),
			"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.E)).Bytes()),
		})
	}
	b, err := json.Marshal(map[string]any{"keys": list})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// secSign signs claims with method and key; header entries are added to
// the JOSE header (kid, crit...).
func secSign(t *testing.T, m jwt.SigningMethod, key any, claims map[string]any, header map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, jwt.MapClaims(claims))
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign %s: %v", m.Alg(), err)
	}
	return s
}

// secUnsigned builds an "alg": alg token with the given signature part,
// bypassing the library (which refuses to make such tokens).
func secUnsigned(t *testing.T, alg string, claims map[string]any, sig string) string {
	t.Helper()
	h, _ := json.Marshal(map[string]any{"alg": alg, "typ": "JWT"})
	c, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return enc(h) + "." + enc(c) + "." + sig
}

// secB64 is base64url without padding, as JOSE writes it.
func secB64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// secB64JSON is the JOSE segment of v.
func secB64JSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return secB64(b)
}

// secCopyClaims returns a copy of base with the changes applied; a nil
// value deletes the claim.
func secCopyClaims(base map[string]any, changes map[string]any) map[string]any {
	out := make(map[string]any, len(base)+len(changes))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range changes {
		if v == nil {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}

// secWSHandshake tries a WebSocket handshake with token in the query and
// returns the HTTP answer of a refused one (nil when it was accepted, in
// which case the connection is closed).
func secWSHandshake(t *testing.T, n *testNode, token string) *response {
	t.Helper()
	conn, res, err := wsTryDial(n, wsQuery(token, ""), nil)
	if err == nil {
		conn.Close()
		return nil
	}
	if res == nil {
		t.Fatalf("handshake failed without an HTTP answer: %v", err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return &response{Code: res.StatusCode, Header: res.Header, Body: body}
}
