package testkit

import (
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/presence-cluster/presence/api/auth"
)

// AdminID is the subject of admin tokens; tests never use it as a traffic
// user or as the subject of /users/me calls.
const AdminID = 9_000_000

// Mint issues an HS256 token for secret, valid for an hour.
func Mint(t testing.TB, secret []byte, userID int64, username string, admin bool) string {
	t.Helper()
	tok, err := auth.Mint(secret, auth.MintClaims{UserID: userID, Username: username, Admin: admin, TTL: time.Hour})
	if err != nil {
		t.Fatalf("mint: %v", err)
	}
	return tok
}

// Tokens mints and caches one token per user for a secret: user "user<id>",
// admin for AdminID only, valid for two hours. Traffic loops mint a lot.
type Tokens struct {
	secret []byte
	mu     sync.Mutex
	m      map[int64]string
}

// NewTokens returns the token cache of secret.
func NewTokens(secret []byte) *Tokens { return &Tokens{secret: secret, m: map[int64]string{}} }

// Secret is the HS256 secret the tokens are signed with.
func (k *Tokens) Secret() []byte { return k.secret }

// Of returns the token of user id. It panics if minting fails, which only
// a broken secret does.
func (k *Tokens) Of(id int64) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	tok, ok := k.m[id]
	if !ok {
		var err error
		tok, err = auth.Mint(k.secret, auth.MintClaims{
			UserID: id, Username: "user" + strconv.FormatInt(id, 10), Admin: id == AdminID, TTL: 2 * time.Hour,
		})
		if err != nil {
			panic(fmt.Sprintf("testkit: mint: %v", err))
		}
		k.m[id] = tok
	}
	return tok
}

// Until mints a fresh (uncached) token of user id, named as Of names it,
// that expires at exp: a short-lived token for session-lifetime tests, or
// an already expired one when exp is in the past. exp is kept to the
// second, as JWTs carry it.
func (k *Tokens) Until(id int64, exp time.Time) string {
	return MintUntil(k.secret, id, "user"+strconv.FormatInt(id, 10), exp)
}

// MintUntil issues an HS256 token of userID, signed with secret, that
// expires at exp (issued a minute before exp when exp is in the past, so
// that only exp makes it invalid). It panics if signing fails, which only
// an empty secret does.
func MintUntil(secret []byte, userID int64, username string, exp time.Time) string {
	iat := time.Now()
	if !exp.After(iat) {
		iat = exp.Add(-time.Minute)
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": strconv.FormatInt(userID, 10), "username": username,
		"iat": iat.Unix(), "exp": exp.Unix(),
	}).SignedString(secret)
	if err != nil || len(secret) == 0 {
		panic(fmt.Sprintf("testkit: mint: %v", err))
	}
	return tok
}
