// Package auth turns bearer JWTs into an Identity for the presence API.
//
// The contract is the "Identity" section of the design: the algorithm is
// pinned by the configured key type (HS256 for a shared secret, RS256, ES256
// and EdDSA for public keys), exp is mandatory, iss and aud are checked when
// configured, and every rejection is the single ErrInvalidToken so handlers
// can answer 401 "Invalid or expired token" without leaking why.
package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// DefaultLeeway is the clock skew tolerated on exp, nbf and iat when
// Config.Leeway is zero. Tokens often come from another machine (an identity
// provider, a client's backend), and a few seconds of drift must not turn
// into spurious 401s.
const DefaultLeeway = 30 * time.Second

// NoLeeway, as Config.Leeway, tolerates no clock skew at all (zero means
// DefaultLeeway).
const NoLeeway = -1 * time.Nanosecond

// MaxTokenLength bounds the token size Verify will look at, so an attacker
// cannot make every node base64- and JSON-decode megabytes per request (the
// WebSocket query parameter is not bounded by header limits).
const MaxTokenLength = 16 << 10

// ErrInvalidToken is the only error Verify returns. The cause is wrapped for
// logs; callers should match it with errors.Is and show clients nothing more
// than "Invalid or expired token".
var ErrInvalidToken = errors.New("invalid or expired token")

// Identity is what the rest of the service knows about a caller: enough to
// address the user's actor and to gate admin endpoints.
type Identity struct {
	UserID   int64
	Username string
	Admin    bool
}

// Config selects the keys a Verifier trusts. Secret and PublicKeysFile may
// both be set (say, dev tokens from presencectl beside an identity
// provider's RS256 tokens); at least one is required.
type Config struct {
	// Secret enables HS256. A secret given as text (flag, environment) is
	// used as its bytes, without trimming, so every tool derives the same key.
	Secret []byte
	// PublicKeysFile is a PEM file (PUBLIC KEY, RSA PUBLIC KEY or
	// CERTIFICATE blocks) or a JWKS JSON file. RSA keys enable RS256, P-256
	// keys ES256, Ed25519 keys EdDSA. Reload re-reads it.
	PublicKeysFile string
	// Issuer, when set, must equal the token's iss.
	Issuer string
	// Audience, when set, must be one of the token's aud values.
	Audience string
	// Leeway is the tolerated clock skew: zero means DefaultLeeway, a
	// negative value means none (NoLeeway).
	Leeway time.Duration
}

// Verifier checks tokens against the configured keys. It is safe for
// concurrent use; Verify does no I/O and takes no locks, so it can sit on
// every request and WebSocket handshake.
type Verifier struct {
	cfg    Config
	keys   atomic.Pointer[keySet]
	cache  *tokenCache
	reload sync.Mutex // serialises Reload; Verify never takes it
}

// NewVerifier loads the configured keys. It fails on a configuration that
// could never accept a token, rather than starting a node that answers 401
// to everyone.
func NewVerifier(cfg Config) (*Verifier, error) {
	if len(cfg.Secret) == 0 && cfg.PublicKeysFile == "" {
		return nil, errors.New("auth: no key configured: need a secret or a public keys file")
	}
	cfg.Secret = bytes.Clone(cfg.Secret)
	v := &Verifier{cfg: cfg, cache: newTokenCache()}
	ks, err := v.load()
	if err != nil {
		return nil, err
	}
	v.keys.Store(ks)
	return v, nil
}

// Reload re-reads PublicKeysFile and swaps the keys in one step, so keys can
// rotate without a restart. On error the previous keys stay in force, so a
// half-written file during a rotation does not lock every user out.
func (v *Verifier) Reload() error {
	v.reload.Lock()
	defer v.reload.Unlock()
	ks, err := v.load()
	if err != nil {
		return err
	}
	v.keys.Store(ks)
	return nil
}

// Algorithms reports the JWT algorithms currently accepted, for the startup
// summary and for debugging "why is my token refused".
func (v *Verifier) Algorithms() []string {
	return slices.Clone(v.keys.Load().algs)
}

func (v *Verifier) load() (*keySet, error) {
	var pub []publicKey
	if v.cfg.PublicKeysFile != "" {
		var err error
		if pub, err = loadPublicKeysFile(v.cfg.PublicKeysFile); err != nil {
			return nil, err
		}
	}
	return newKeySet(v.cfg, pub)
}

// Verify checks the token's signature and claims and extracts the caller's
// identity. Every failure is ErrInvalidToken (with the cause wrapped).
func (v *Verifier) Verify(token string) (Identity, error) {
	id, _, err := v.VerifyExpiry(token)
	return id, err
}

// VerifyExpiry is Verify that also returns the token's exp claim (without
// the leeway), which bounds how long a WebSocket session opened or
// refreshed with it may live.
func (v *Verifier) VerifyExpiry(token string) (Identity, time.Time, error) {
	if token == "" {
		return Identity{}, time.Time{}, fmt.Errorf("%w: empty token", ErrInvalidToken)
	}
	if len(token) > MaxTokenLength {
		return Identity{}, time.Time{}, fmt.Errorf("%w: token longer than %d bytes", ErrInvalidToken, MaxTokenLength)
	}
	ks := v.keys.Load()
	now := time.Now()
	if e, ok := v.cache.get(token, ks, now); ok {
		return e.id, e.exp, nil
	}
	var c claims
	if _, err := ks.parser.ParseWithClaims(token, &c, ks.keyfunc); err != nil {
		return Identity{}, time.Time{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	id, err := c.identity()
	if err != nil {
		return Identity{}, time.Time{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	var exp time.Time
	if c.ExpiresAt != nil { // always set: the parser requires exp
		exp = c.ExpiresAt.Time
		// The parser accepts the token until exp plus the leeway.
		expires := exp.Add(v.Leeway())
		if limit := now.Add(cacheTTL); limit.Before(expires) {
			expires = limit
		}
		v.cache.put(token, cacheEntry{id: id, exp: exp, expires: expires, keys: ks})
	}
	return id, exp, nil
}

// Leeway is the clock skew tolerated on exp, nbf and iat: Config.Leeway,
// DefaultLeeway when that is zero, none when it is negative. A WebSocket
// session lives until its token's exp plus this.
func (v *Verifier) Leeway() time.Duration {
	switch {
	case v.cfg.Leeway > 0:
		return v.cfg.Leeway
	case v.cfg.Leeway < 0:
		return 0
	}
	return DefaultLeeway
}

// claims is decoded into a struct rather than jwt.MapClaims: fewer
// allocations per request, and the type checks of the registered claims
// (exp must be a number, aud a string or list) come for free.
type claims struct {
	jwt.RegisteredClaims
	UserID            json.RawMessage `json:"user_id"`
	Username          string          `json:"username"`
	PreferredUsername string          `json:"preferred_username"`
	IsAdmin           json.RawMessage `json:"is_admin"`
	Roles             json.RawMessage `json:"roles"`
}

func (c *claims) identity() (Identity, error) {
	id, err := c.userID()
	if err != nil {
		return Identity{}, err
	}
	name := c.Username
	if name == "" {
		name = c.PreferredUsername
	}
	return Identity{UserID: id, Username: name, Admin: c.admin()}, nil
}

// userID prefers sub, as the design says; user_id serves identity providers
// whose sub is not our numeric id (a UUID, an email).
func (c *claims) userID() (int64, error) {
	if id, ok := parsePositive(c.Subject); ok {
		return id, nil
	}
	raw := bytes.TrimSpace(c.UserID)
	if len(raw) == 0 || string(raw) == "null" {
		if c.Subject == "" {
			return 0, errors.New("no sub and no user_id claim")
		}
		return 0, fmt.Errorf("sub %q is not a positive integer and there is no user_id claim", c.Subject)
	}
	text := string(raw)
	if raw[0] == '"' {
		if err := json.Unmarshal(raw, &text); err != nil {
			return 0, fmt.Errorf("user_id: %w", err)
		}
	}
	// ParseInt refuses fractions and exponents: 1.5 or 1e3 is not an id.
	id, ok := parsePositive(text)
	if !ok {
		return 0, fmt.Errorf("user_id %s is not a positive integer", raw)
	}
	return id, nil
}

func parsePositive(s string) (int64, bool) {
	if s == "" || s[0] == '+' {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, false
	}
	return n, true
}

// admin reads is_admin and roles leniently: a claim of an unexpected type
// means "not admin" rather than an invalid token, because these claims are
// often shaped by an identity provider we do not control.
func (c *claims) admin() bool {
	if string(bytes.TrimSpace(c.IsAdmin)) == "true" {
		return true
	}
	raw := bytes.TrimSpace(c.Roles)
	if len(raw) == 0 {
		return false
	}
	switch raw[0] {
	case '"':
		var role string
		return json.Unmarshal(raw, &role) == nil && role == "admin"
	case '[':
		var roles []any
		if json.Unmarshal(raw, &roles) != nil {
			return false
		}
		for _, r := range roles {
			if s, ok := r.(string); ok && s == "admin" {
				return true
			}
		}
	}
	return false
}
