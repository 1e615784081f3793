package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ---- fixtures ---------------------------------------------------------------

type keyFixtures struct {
	rsa1, rsa2, rsaOther *rsa.PrivateKey
	rsaSmall             *rsa.PrivateKey
	ec1, ecOther         *ecdsa.PrivateKey
	ec384                *ecdsa.PrivateKey
	ed1, edOther         ed25519.PrivateKey
}

var (
	fxOnce sync.Once
	fx     keyFixtures
)

func fixtures(t testing.TB) *keyFixtures {
	t.Helper()
	fxOnce.Do(func() {
		must := func(err error) {
			if err != nil {
				panic(err)
			}
		}
		var err error
		fx.rsa1, err = rsa.GenerateKey(rand.Reader, 2048)
		must(err)
		fx.rsa2, err = rsa.GenerateKey(rand.Reader, 2048)
		must(err)
		fx.rsaOther, err = rsa.GenerateKey(rand.Reader, 2048)
		must(err)
		fx.rsaSmall, err = rsa.GenerateKey(rand.Reader, 1024)
		must(err)
		fx.ec1, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		must(err)
		fx.ecOther, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		must(err)
		fx.ec384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		must(err)
		_, fx.ed1, err = ed25519.GenerateKey(rand.Reader)
		must(err)
		_, fx.edOther, err = ed25519.GenerateKey(rand.Reader)
		must(err)
	})
	return &fx
}

var testSecret = []byte("test-secret-0123456789abcdef0123456789")

func pemPKIX(t testing.TB, pub crypto.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func pemPKCS1(pub *rsa.PublicKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(pub)})
}

func pemCert(t testing.TB, priv crypto.Signer) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "presence test signer"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, priv.Public(), priv)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func b64u(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func jwkRSA(kid string, pub *rsa.PublicKey) map[string]any {
	return map[string]any{"kty": "RSA", "kid": kid, "use": "sig", "n": b64u(pub.N.Bytes()), "e": b64u(big.NewInt(int64(pub.E)).Bytes())}
}

func jwkEC(t testing.TB, kid string, pub *ecdsa.PublicKey) map[string]any {
	t.Helper()
	raw, err := pub.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return map[string]any{"kty": "EC", "kid": kid, "crv": "P-256", "x": b64u(raw[1:33]), "y": b64u(raw[33:65])}
}

func jwkEd(kid string, pub ed25519.PublicKey) map[string]any {
	return map[string]any{"kty": "OKP", "kid": kid, "crv": "Ed25519", "x": b64u(pub)}
}

func jwksJSON(t testing.TB, keys ...map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t testing.TB, dir, name string, data ...[]byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	var all []byte
	for _, d := range data {
		all = append(all, d...)
	}
	if err := os.WriteFile(path, all, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// del in claimsWith removes a claim from the defaults.
type delMarker struct{}

var del = delMarker{}

// claimsWith returns valid default claims (sub 42, alice, exp in an hour)
// with overrides given as key, value pairs.
func claimsWith(kv ...any) jwt.MapClaims {
	now := time.Now()
	c := jwt.MapClaims{
		"sub":      "42",
		"username": "alice",
		"iat":      now.Unix(),
		"exp":      now.Add(time.Hour).Unix(),
	}
	for i := 0; i < len(kv); i += 2 {
		k := kv[i].(string)
		if kv[i+1] == del {
			delete(c, k)
		} else {
			c[k] = kv[i+1]
		}
	}
	return c
}

func sign(t testing.TB, m jwt.SigningMethod, key any, c jwt.MapClaims, hdr ...any) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	for i := 0; i < len(hdr); i += 2 {
		tok.Header[hdr[i].(string)] = hdr[i+1]
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign %s: %v", m.Alg(), err)
	}
	return s
}

func rawToken(header, claims string, sig []byte) string {
	return b64u([]byte(header)) + "." + b64u([]byte(claims)) + "." + b64u(sig)
}

func unix(d time.Duration) int64 { return time.Now().Add(d).Unix() }

// ---- Verify -----------------------------------------------------------------

func TestVerify(t *testing.T) {
	f := fixtures(t)
	dir := t.TempDir()

	// PEM bundle: PKCS#1 RSA, PKIX RSA (two RSA keys, no kid: a key set),
	// PKIX EC, and an Ed25519 key inside a certificate.
	pemFile := writeFile(t, dir, "keys.pem",
		[]byte("# comment lines between blocks are ignored\n"),
		pemPKCS1(&f.rsa1.PublicKey),
		pemPKIX(t, &f.rsa2.PublicKey),
		pemPKIX(t, &f.ec1.PublicKey),
		pemCert(t, f.ed1),
	)
	pemBytes, _ := os.ReadFile(pemFile)
	jwksFile := writeFile(t, dir, "jwks.json", jwksJSON(t,
		jwkRSA("r1", &f.rsa1.PublicKey),
		jwkRSA("r2", &f.rsa2.PublicKey),
		jwkEC(t, "e1", &f.ec1.PublicKey),
		jwkEd("d1", f.ed1.Public().(ed25519.PublicKey)),
		map[string]any{"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
		map[string]any{"kty": "oct", "kid": "sym", "k": b64u(testSecret)},
	))

	verifiers := map[string]Config{
		"hs":       {Secret: testSecret},
		"pem":      {PublicKeysFile: pemFile},
		"jwks":     {PublicKeysFile: jwksFile},
		"both":     {Secret: testSecret, PublicKeysFile: pemFile},
		"issaud":   {Secret: testSecret, Issuer: "https://id.example", Audience: "presence"},
		"noleeway": {Secret: testSecret, Leeway: -1},
		"leeway5m": {Secret: testSecret, Leeway: 5 * time.Minute},
	}
	vs := map[string]*Verifier{}
	for name, cfg := range verifiers {
		v, err := NewVerifier(cfg)
		if err != nil {
			t.Fatalf("NewVerifier(%s): %v", name, err)
		}
		vs[name] = v
	}

	hs := func(c jwt.MapClaims, hdr ...any) string {
		return sign(t, jwt.SigningMethodHS256, testSecret, c, hdr...)
	}
	alice := Identity{UserID: 42, Username: "alice"}
	pkixRSA1 := pemPKIX(t, &f.rsa1.PublicKey)
	derRSA1, _ := x509.MarshalPKIXPublicKey(&f.rsa1.PublicKey)
	noneTok, err := jwt.NewWithClaims(jwt.SigningMethodNone, claimsWith()).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	validRS := sign(t, jwt.SigningMethodRS256, f.rsa1, claimsWith())

	tests := []struct {
		name    string
		v       string
		token   string
		want    Identity
		wantErr bool
		cause   error // when set, errors.Is(err, cause) must hold too
	}{
		// Accepted tokens and claim mapping.
		{name: "HS256 valid", v: "hs", token: hs(claimsWith()), want: alice},
		{name: "HS256 accepted beside public keys", v: "both", token: hs(claimsWith()), want: alice},
		{name: "user_id number when sub missing", v: "hs", token: hs(claimsWith("sub", del, "user_id", 7)), want: Identity{UserID: 7, Username: "alice"}},
		{name: "user_id decimal string", v: "hs", token: hs(claimsWith("sub", del, "user_id", "8")), want: Identity{UserID: 8, Username: "alice"}},
		{name: "user_id when sub is not numeric", v: "hs", token: hs(claimsWith("sub", "auth0|abc", "user_id", 9)), want: Identity{UserID: 9, Username: "alice"}},
		{name: "sub wins over user_id", v: "hs", token: hs(claimsWith("user_id", 9)), want: alice},
		{name: "large int64 sub", v: "hs", token: hs(claimsWith("sub", "9223372036854775807")), want: Identity{UserID: 1<<63 - 1, Username: "alice"}},
		{name: "preferred_username fallback", v: "hs", token: hs(claimsWith("username", del, "preferred_username", "bob")), want: Identity{UserID: 42, Username: "bob"}},
		{name: "username wins over preferred_username", v: "hs", token: hs(claimsWith("preferred_username", "bob")), want: alice},
		{name: "no username", v: "hs", token: hs(claimsWith("username", del)), want: Identity{UserID: 42}},
		{name: "is_admin true", v: "hs", token: hs(claimsWith("is_admin", true)), want: Identity{UserID: 42, Username: "alice", Admin: true}},
		{name: "is_admin false", v: "hs", token: hs(claimsWith("is_admin", false)), want: alice},
		{name: "is_admin string is not admin", v: "hs", token: hs(claimsWith("is_admin", "true")), want: alice},
		{name: "roles array with admin", v: "hs", token: hs(claimsWith("roles", []any{"user", "admin"})), want: Identity{UserID: 42, Username: "alice", Admin: true}},
		{name: "roles string admin", v: "hs", token: hs(claimsWith("roles", "admin")), want: Identity{UserID: 42, Username: "alice", Admin: true}},
		{name: "roles without admin", v: "hs", token: hs(claimsWith("roles", []any{"user", "Admin", 3})), want: alice},
		{name: "roles of odd type ignored", v: "hs", token: hs(claimsWith("roles", map[string]any{"admin": true})), want: alice},
		{name: "RS256 first PEM key", v: "pem", token: validRS, want: alice},
		{name: "RS256 second PEM key (key set, no kid)", v: "pem", token: sign(t, jwt.SigningMethodRS256, f.rsa2, claimsWith()), want: alice},
		{name: "RS256 with a kid against kid-less PEM keys", v: "pem", token: sign(t, jwt.SigningMethodRS256, f.rsa2, claimsWith(), "kid", "whatever"), want: alice},
		{name: "ES256 PEM", v: "pem", token: sign(t, jwt.SigningMethodES256, f.ec1, claimsWith()), want: alice},
		{name: "EdDSA from certificate", v: "pem", token: sign(t, jwt.SigningMethodEdDSA, f.ed1, claimsWith()), want: alice},
		{name: "RS256 accepted beside secret", v: "both", token: validRS, want: alice},
		{name: "JWKS RS256 kid r1", v: "jwks", token: sign(t, jwt.SigningMethodRS256, f.rsa1, claimsWith(), "kid", "r1"), want: alice},
		{name: "JWKS RS256 kid r2", v: "jwks", token: sign(t, jwt.SigningMethodRS256, f.rsa2, claimsWith(), "kid", "r2"), want: alice},
		{name: "JWKS RS256 no kid tries all", v: "jwks", token: sign(t, jwt.SigningMethodRS256, f.rsa2, claimsWith()), want: alice},
		{name: "JWKS ES256 kid", v: "jwks", token: sign(t, jwt.SigningMethodES256, f.ec1, claimsWith(), "kid", "e1"), want: alice},
		{name: "JWKS EdDSA kid", v: "jwks", token: sign(t, jwt.SigningMethodEdDSA, f.ed1, claimsWith(), "kid", "d1"), want: alice},
		{name: "issuer and audience match", v: "issaud", token: hs(claimsWith("iss", "https://id.example", "aud", "presence")), want: alice},
		{name: "audience list contains ours", v: "issaud", token: hs(claimsWith("iss", "https://id.example", "aud", []any{"other", "presence"})), want: alice},
		{name: "expired inside leeway", v: "hs", token: hs(claimsWith("exp", unix(-10*time.Second))), want: alice},
		{name: "nbf inside leeway", v: "hs", token: hs(claimsWith("nbf", unix(10*time.Second))), want: alice},
		{name: "iat inside leeway", v: "hs", token: hs(claimsWith("iat", unix(10*time.Second))), want: alice},
		{name: "custom leeway", v: "leeway5m", token: hs(claimsWith("exp", unix(-2*time.Minute))), want: alice},
		{name: "nbf in the past", v: "hs", token: hs(claimsWith("nbf", unix(-time.Minute))), want: alice},

		// Refused tokens.
		{name: "empty", v: "hs", token: "", wantErr: true},
		{name: "garbage", v: "hs", token: "not.a.jwt", wantErr: true, cause: jwt.ErrTokenMalformed},
		{name: "two segments", v: "hs", token: "abc.def", wantErr: true, cause: jwt.ErrTokenMalformed},
		{name: "too long", v: "hs", token: strings.Repeat("a", MaxTokenLength+1), wantErr: true},
		{name: "alg none", v: "hs", token: noneTok, wantErr: true, cause: jwt.ErrTokenSignatureInvalid},
		{name: "alg none handmade", v: "both", token: rawToken(`{"alg":"none","typ":"JWT"}`, `{"sub":"42","exp":9999999999}`, nil), wantErr: true},
		{name: "alg NONE", v: "both", token: rawToken(`{"alg":"NONE"}`, `{"sub":"42","exp":9999999999}`, nil), wantErr: true},
		{name: "HS/RS confusion: PEM file bytes, no secret", v: "pem", token: sign(t, jwt.SigningMethodHS256, pemBytes, claimsWith()), wantErr: true, cause: jwt.ErrTokenSignatureInvalid},
		{name: "HS/RS confusion: PKIX PEM, no secret", v: "pem", token: sign(t, jwt.SigningMethodHS256, pkixRSA1, claimsWith()), wantErr: true},
		{name: "HS/RS confusion: PEM file bytes, with secret", v: "both", token: sign(t, jwt.SigningMethodHS256, pemBytes, claimsWith()), wantErr: true, cause: jwt.ErrTokenSignatureInvalid},
		{name: "HS/RS confusion: DER, with secret", v: "both", token: sign(t, jwt.SigningMethodHS256, derRSA1, claimsWith()), wantErr: true},
		{name: "HS/RS confusion: JWKS", v: "jwks", token: sign(t, jwt.SigningMethodHS256, pkixRSA1, claimsWith(), "kid", "r1"), wantErr: true},
		{name: "HS256 wrong secret", v: "hs", token: sign(t, jwt.SigningMethodHS256, []byte("another-secret-of-decent-length!!"), claimsWith()), wantErr: true, cause: jwt.ErrTokenSignatureInvalid},
		{name: "HS512 with the right secret", v: "hs", token: sign(t, jwt.SigningMethodHS512, testSecret, claimsWith()), wantErr: true},
		{name: "HS384 with the right secret", v: "hs", token: sign(t, jwt.SigningMethodHS384, testSecret, claimsWith()), wantErr: true},
		{name: "RS256 against secret only", v: "hs", token: validRS, wantErr: true},
		{name: "RS256 unknown key", v: "pem", token: sign(t, jwt.SigningMethodRS256, f.rsaOther, claimsWith()), wantErr: true, cause: jwt.ErrTokenSignatureInvalid},
		{name: "RS384 with a configured key", v: "pem", token: sign(t, jwt.SigningMethodRS384, f.rsa1, claimsWith()), wantErr: true},
		{name: "PS256 with a configured key", v: "pem", token: sign(t, jwt.SigningMethodPS256, f.rsa1, claimsWith()), wantErr: true},
		{name: "ES256 unknown key", v: "pem", token: sign(t, jwt.SigningMethodES256, f.ecOther, claimsWith()), wantErr: true},
		{name: "ES384 token", v: "pem", token: sign(t, jwt.SigningMethodES384, f.ec384, claimsWith()), wantErr: true},
		{name: "EdDSA unknown key", v: "pem", token: sign(t, jwt.SigningMethodEdDSA, f.edOther, claimsWith()), wantErr: true},
		{name: "JWKS kid of another key", v: "jwks", token: sign(t, jwt.SigningMethodRS256, f.rsa1, claimsWith(), "kid", "r2"), wantErr: true},
		{name: "JWKS unknown kid", v: "jwks", token: sign(t, jwt.SigningMethodRS256, f.rsa1, claimsWith(), "kid", "zz"), wantErr: true},
		{name: "JWKS kid of an EC key on RS256", v: "jwks", token: sign(t, jwt.SigningMethodRS256, f.rsa1, claimsWith(), "kid", "e1"), wantErr: true},
		{name: "JWKS skipped enc key kid", v: "jwks", token: sign(t, jwt.SigningMethodRS256, f.rsa1, claimsWith(), "kid", "enc"), wantErr: true},
		{name: "crit header", v: "hs", token: hs(claimsWith(), "crit", []any{"exp"}), wantErr: true},
		{name: "tampered payload", v: "hs", token: tamper(t, hs(claimsWith())), wantErr: true, cause: jwt.ErrTokenSignatureInvalid},
		{name: "expired", v: "hs", token: hs(claimsWith("exp", unix(-2*time.Minute))), wantErr: true, cause: jwt.ErrTokenExpired},
		{name: "expired without leeway", v: "noleeway", token: hs(claimsWith("exp", unix(-10*time.Second))), wantErr: true, cause: jwt.ErrTokenExpired},
		{name: "nbf in the future", v: "hs", token: hs(claimsWith("nbf", unix(2*time.Minute))), wantErr: true, cause: jwt.ErrTokenNotValidYet},
		{name: "iat in the future", v: "hs", token: hs(claimsWith("iat", unix(2*time.Minute))), wantErr: true, cause: jwt.ErrTokenUsedBeforeIssued},
		{name: "missing exp", v: "hs", token: hs(claimsWith("exp", del)), wantErr: true, cause: jwt.ErrTokenRequiredClaimMissing},
		{name: "exp as string", v: "hs", token: hs(claimsWith("exp", "tomorrow")), wantErr: true},
		{name: "missing sub and user_id", v: "hs", token: hs(claimsWith("sub", del)), wantErr: true},
		{name: "non-numeric sub", v: "hs", token: hs(claimsWith("sub", "alice")), wantErr: true},
		{name: "zero sub", v: "hs", token: hs(claimsWith("sub", "0")), wantErr: true},
		{name: "negative sub", v: "hs", token: hs(claimsWith("sub", "-5")), wantErr: true},
		{name: "plus-signed sub", v: "hs", token: hs(claimsWith("sub", "+5")), wantErr: true},
		{name: "sub overflows int64", v: "hs", token: hs(claimsWith("sub", "9223372036854775808")), wantErr: true},
		{name: "numeric sub (not a string)", v: "hs", token: hs(claimsWith("sub", 42)), wantErr: true},
		{name: "user_id zero", v: "hs", token: hs(claimsWith("sub", del, "user_id", 0)), wantErr: true},
		{name: "user_id negative", v: "hs", token: hs(claimsWith("sub", del, "user_id", -1)), wantErr: true},
		{name: "user_id fraction", v: "hs", token: hs(claimsWith("sub", del, "user_id", 1.5)), wantErr: true},
		{name: "user_id text", v: "hs", token: hs(claimsWith("sub", del, "user_id", "x")), wantErr: true},
		{name: "user_id bool", v: "hs", token: hs(claimsWith("sub", del, "user_id", true)), wantErr: true},
		{name: "user_id null", v: "hs", token: hs(claimsWith("sub", del, "user_id", nil)), wantErr: true},
		{name: "wrong issuer", v: "issaud", token: hs(claimsWith("iss", "https://evil.example", "aud", "presence")), wantErr: true, cause: jwt.ErrTokenInvalidIssuer},
		{name: "missing issuer", v: "issaud", token: hs(claimsWith("aud", "presence")), wantErr: true},
		{name: "wrong audience", v: "issaud", token: hs(claimsWith("iss", "https://id.example", "aud", "other")), wantErr: true, cause: jwt.ErrTokenInvalidAudience},
		{name: "missing audience", v: "issaud", token: hs(claimsWith("iss", "https://id.example")), wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := vs[tc.v].Verify(tc.token)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("Verify accepted the token: %+v", got)
				}
				if !errors.Is(err, ErrInvalidToken) {
					t.Fatalf("error %v does not wrap ErrInvalidToken", err)
				}
				if tc.cause != nil && !errors.Is(err, tc.cause) {
					t.Fatalf("error %v does not wrap %v", err, tc.cause)
				}
				if got != (Identity{}) {
					t.Fatalf("identity %+v returned with an error", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if got != tc.want {
				t.Fatalf("identity = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func tamper(t testing.TB, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	parts[1] = b64u([]byte(strings.Replace(string(payload), `"42"`, `"1"`, 1)))
	return strings.Join(parts, ".")
}

func TestAlgorithmsPinnedByKeyType(t *testing.T) {
	f := fixtures(t)
	dir := t.TempDir()
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"secret", Config{Secret: testSecret}, "HS256"},
		{"rsa", Config{PublicKeysFile: writeFile(t, dir, "r.pem", pemPKIX(t, &f.rsa1.PublicKey))}, "RS256"},
		{"ec", Config{PublicKeysFile: writeFile(t, dir, "e.pem", pemPKIX(t, &f.ec1.PublicKey))}, "ES256"},
		{"ed", Config{PublicKeysFile: writeFile(t, dir, "d.pem", pemPKIX(t, f.ed1.Public()))}, "EdDSA"},
		{"all", Config{Secret: testSecret, PublicKeysFile: writeFile(t, dir, "a.pem",
			pemPKIX(t, &f.rsa1.PublicKey), pemPKIX(t, &f.ec1.PublicKey), pemPKIX(t, f.ed1.Public()))}, "ES256,EdDSA,HS256,RS256"},
		{"single JWK", Config{PublicKeysFile: writeFile(t, dir, "one.json", mustJSON(t, jwkEC(t, "", &f.ec1.PublicKey)))}, "ES256"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := NewVerifier(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(v.Algorithms(), ","); got != tc.want {
				t.Fatalf("Algorithms = %s, want %s", got, tc.want)
			}
		})
	}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestNewVerifierErrors(t *testing.T) {
	f := fixtures(t)
	dir := t.TempDir()
	privDER, err := x509.MarshalPKCS8PrivateKey(f.rsa1)
	if err != nil {
		t.Fatal(err)
	}
	unusable := writeFile(t, dir, "unusable.json", jwksJSON(t,
		map[string]any{"kty": "oct", "k": "AAAA"},
		map[string]any{"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"},
		map[string]any{"kty": "RSA", "use": "enc", "n": "AA", "e": "AQAB"},
		map[string]any{"kty": "RSA", "alg": "RS512", "n": "AA", "e": "AQAB"},
	))
	tests := []struct {
		name string
		cfg  Config
		want string // substring of the error
	}{
		{"nothing configured", Config{}, "no key configured"},
		{"empty secret only", Config{Secret: []byte{}}, "no key configured"},
		{"missing file", Config{PublicKeysFile: filepath.Join(dir, "nope.pem")}, "no such file"},
		{"empty file", Config{PublicKeysFile: writeFile(t, dir, "empty.pem")}, "no PEM block"},
		{"not PEM", Config{PublicKeysFile: writeFile(t, dir, "junk.pem", []byte("hello"))}, "no PEM block"},
		{"private key", Config{PublicKeysFile: writeFile(t, dir, "priv.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}))}, "public keys only"},
		{"unknown block", Config{PublicKeysFile: writeFile(t, dir, "odd.pem", pem.EncodeToMemory(&pem.Block{Type: "FOO", Bytes: []byte{1}}))}, "unsupported type"},
		{"corrupt block", Config{PublicKeysFile: writeFile(t, dir, "bad.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1, 2, 3}}))}, "PEM block 1"},
		{"P-384 key", Config{PublicKeysFile: writeFile(t, dir, "p384.pem", pemPKIX(t, &f.ec384.PublicKey))}, "P-384"},
		{"RSA 1024", Config{PublicKeysFile: writeFile(t, dir, "small.pem", pemPKIX(t, &f.rsaSmall.PublicKey))}, "1024 bits"},
		{"bad JSON", Config{PublicKeysFile: writeFile(t, dir, "bad.json", []byte(`{"keys": [`))}, "JWKS"},
		{"JWKS without keys", Config{PublicKeysFile: writeFile(t, dir, "nokeys.json", []byte(`{"foo": 1}`))}, `no "keys"`},
		{"JWKS only unusable keys", Config{PublicKeysFile: unusable}, "no usable key"},
		{"JWKS bad RSA modulus", Config{PublicKeysFile: writeFile(t, dir, "badn.json", jwksJSON(t,
			map[string]any{"kty": "RSA", "n": "!!", "e": "AQAB"}))}, `"n"`},
		{"JWKS short EC coordinate", Config{PublicKeysFile: writeFile(t, dir, "badec.json", jwksJSON(t,
			map[string]any{"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"}))}, "want 32"},
		{"JWKS EC point off curve", Config{PublicKeysFile: writeFile(t, dir, "offcurve.json", jwksJSON(t,
			map[string]any{"kty": "EC", "crv": "P-256", "x": b64u(make([]byte, 32)), "y": b64u(make([]byte, 32))}))}, "JWKS key 0"},
		{"JWKS small RSA", Config{PublicKeysFile: writeFile(t, dir, "smallrsa.json", jwksJSON(t, jwkRSA("s", &f.rsaSmall.PublicKey)))}, "1024 bits"},
		{"JWKS duplicate kid", Config{PublicKeysFile: writeFile(t, dir, "dup.json", jwksJSON(t,
			jwkRSA("k", &f.rsa1.PublicKey), jwkRSA("k", &f.rsa2.PublicKey)))}, "duplicate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := NewVerifier(tc.cfg)
			if err == nil {
				t.Fatalf("NewVerifier succeeded (%v)", v.Algorithms())
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestConfigSecretIsCopied(t *testing.T) {
	secret := []byte("mutable-secret-0123456789abcdef!!")
	v, err := NewVerifier(Config{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	tok := sign(t, jwt.SigningMethodHS256, []byte("mutable-secret-0123456789abcdef!!"), claimsWith())
	secret[0] = 'X'
	if _, err := v.Verify(tok); err != nil {
		t.Fatalf("changing the caller's slice changed the key: %v", err)
	}
}

// ---- Reload -----------------------------------------------------------------

func TestReload(t *testing.T) {
	f := fixtures(t)
	dir := t.TempDir()
	path := writeFile(t, dir, "keys.pem", pemPKIX(t, &f.rsa1.PublicKey))
	v, err := NewVerifier(Config{PublicKeysFile: path})
	if err != nil {
		t.Fatal(err)
	}
	oldTok := sign(t, jwt.SigningMethodRS256, f.rsa1, claimsWith())
	newTok := sign(t, jwt.SigningMethodEdDSA, f.ed1, claimsWith())
	check := func(step, tok string, ok bool) {
		t.Helper()
		_, err := v.Verify(tok)
		if ok && err != nil {
			t.Fatalf("%s: want accepted, got %v", step, err)
		}
		if !ok && !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("%s: want ErrInvalidToken, got %v", step, err)
		}
	}
	check("before", oldTok, true)
	check("before", newTok, false)

	// Rotate to a JWKS holding only the new key.
	writeFile(t, dir, "keys.pem", jwksJSON(t, jwkEd("n1", f.ed1.Public().(ed25519.PublicKey))))
	check("written, not reloaded", newTok, false)
	if err := v.Reload(); err != nil {
		t.Fatal(err)
	}
	check("after", oldTok, false)
	check("after", newTok, true)
	if got := strings.Join(v.Algorithms(), ","); got != "EdDSA" {
		t.Fatalf("Algorithms after reload = %s", got)
	}

	// A broken file is refused and the current keys stay.
	writeFile(t, dir, "keys.pem", []byte("-----BEGIN PUBLIC KEY-----\ntruncated"))
	if err := v.Reload(); err == nil {
		t.Fatal("Reload accepted a broken file")
	}
	check("after failed reload", newTok, true)

	os.Remove(path)
	if err := v.Reload(); err == nil {
		t.Fatal("Reload accepted a missing file")
	}
	check("after missing file", newTok, true)
}

func TestReloadConcurrentWithVerify(t *testing.T) {
	f := fixtures(t)
	dir := t.TempDir()
	path := writeFile(t, dir, "keys.pem", pemPKIX(t, &f.ec1.PublicKey), pemPKIX(t, f.ed1.Public()))
	v, err := NewVerifier(Config{Secret: testSecret, PublicKeysFile: path})
	if err != nil {
		t.Fatal(err)
	}
	hsTok := sign(t, jwt.SigningMethodHS256, testSecret, claimsWith())
	ecTok := sign(t, jwt.SigningMethodES256, f.ec1, claimsWith())

	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				// Both files keep ec1 and the secret stays, so these must
				// always pass whatever snapshot is current.
				for _, tok := range []string{hsTok, ecTok} {
					if _, err := v.Verify(tok); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	files := [][]byte{
		append(pemPKIX(t, &f.ec1.PublicKey), pemPKIX(t, f.ed1.Public())...),
		jwksJSON(t, jwkEC(t, "e", &f.ec1.PublicKey)),
	}
	for i := range 50 {
		tmp := writeFile(t, dir, "next", files[i%2])
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
		if err := v.Reload(); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Verify failed during reloads: %v", err)
	}
}

// ---- secrets and minting ----------------------------------------------------

func TestLoadOrCreateSecret(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "nested")

	if _, err := ReadSecret(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ReadSecret on a fresh dir: %v, want fs.ErrNotExist", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ReadSecret created the directory (stat err %v)", err)
	}

	s1, err := LoadOrCreateSecret(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := st.Mode().Perm(); perm != 0o700 {
		t.Errorf("data dir mode %o, want 700", perm)
	}
	path := filepath.Join(dir, SecretFileName)
	st, err = os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := st.Mode().Perm(); perm != 0o600 {
		t.Errorf("secret file mode %o, want 600", perm)
	}
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(content) != string(s1)+"\n" {
		t.Errorf("file %q, secret %q: want the secret plus a newline", content, s1)
	}
	raw, err := base64.RawURLEncoding.DecodeString(string(s1))
	if err != nil || len(raw) != 32 {
		t.Errorf("secret %q is not base64url of 32 bytes (%d bytes, %v)", s1, len(raw), err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("data dir holds %d entries, want only the secret (temp file left behind?)", len(entries))
	}

	s2, err := LoadOrCreateSecret(dir)
	if err != nil {
		t.Fatal(err)
	}
	if string(s2) != string(s1) {
		t.Fatal("second LoadOrCreateSecret returned a different secret")
	}
	s3, err := ReadSecret(dir)
	if err != nil || string(s3) != string(s1) {
		t.Fatalf("ReadSecret = %q, %v; want the created secret", s3, err)
	}

	// Another data dir gets another secret.
	other, err := LoadOrCreateSecret(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if string(other) == string(s1) {
		t.Fatal("two data dirs got the same secret")
	}

	// The secret works end to end.
	tok, err := Mint(s1, MintClaims{UserID: 5, Username: "eve", TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(Config{Secret: s3})
	if err != nil {
		t.Fatal(err)
	}
	if id, err := v.Verify(tok); err != nil || id.UserID != 5 {
		t.Fatalf("Verify = %+v, %v", id, err)
	}
}

func TestLoadOrCreateSecretConcurrent(t *testing.T) {
	dir := t.TempDir()
	const n = 16
	got := make([][]byte, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			s, err := LoadOrCreateSecret(dir)
			if err != nil {
				t.Error(err)
			}
			got[i] = s
		})
	}
	wg.Wait()
	for i := range got {
		if string(got[i]) != string(got[0]) {
			t.Fatalf("caller %d got %q, caller 0 got %q", i, got[i], got[0])
		}
	}
}

func TestReadSecretEmptyFile(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, SecretFileName, []byte("\n"))
	if _, err := ReadSecret(dir); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("ReadSecret on an empty file: %v", err)
	}
	if _, err := LoadOrCreateSecret(dir); err == nil {
		t.Fatal("LoadOrCreateSecret replaced an empty secret file silently")
	}
}

func TestMint(t *testing.T) {
	v, err := NewVerifier(Config{Secret: testSecret, Issuer: "presenced", Audience: "presence"})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := Mint(testSecret, MintClaims{UserID: 77, Username: "zoe", Admin: true, TTL: time.Hour, Issuer: "presenced", Audience: "presence"})
	if err != nil {
		t.Fatal(err)
	}
	id, err := v.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Identity{UserID: 77, Username: "zoe", Admin: true}); id != want {
		t.Fatalf("identity %+v, want %+v", id, want)
	}

	// The claims on the wire are the documented ones.
	var c map[string]any
	payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	if c["sub"] != "77" || c["username"] != "zoe" || c["is_admin"] != true {
		t.Fatalf("claims %v", c)
	}
	exp, _ := c["exp"].(float64)
	iat, _ := c["iat"].(float64)
	if exp-iat != 3600 {
		t.Fatalf("exp-iat = %v, want 3600", exp-iat)
	}

	// Without Admin there is no is_admin claim at all.
	tok, err = Mint(testSecret, MintClaims{UserID: 1, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	payload, _ = base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
	if strings.Contains(string(payload), "is_admin") || strings.Contains(string(payload), "username") {
		t.Fatalf("payload %s has empty optional claims", payload)
	}
	// ...and a verifier expecting iss/aud refuses it.
	if _, err := v.Verify(tok); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("token without iss/aud: %v", err)
	}

	for _, tc := range []struct {
		name   string
		secret []byte
		c      MintClaims
	}{
		{"no secret", nil, MintClaims{UserID: 1, TTL: time.Minute}},
		{"zero user", testSecret, MintClaims{TTL: time.Minute}},
		{"negative user", testSecret, MintClaims{UserID: -1, TTL: time.Minute}},
		{"no TTL", testSecret, MintClaims{UserID: 1}},
		{"negative TTL", testSecret, MintClaims{UserID: 1, TTL: -time.Minute}},
	} {
		if tok, err := Mint(tc.secret, tc.c); err == nil {
			t.Errorf("%s: Mint = %q, want an error", tc.name, tok)
		}
	}
}

// ---- benchmark --------------------------------------------------------------

func BenchmarkVerifyHS256(b *testing.B) {
	v, err := NewVerifier(Config{Secret: testSecret})
	if err != nil {
		b.Fatal(err)
	}
	tok, err := Mint(testSecret, MintClaims{UserID: 42, Username: "alice", TTL: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(tok); err != nil {
			b.Fatal(err)
		}
	}
}
