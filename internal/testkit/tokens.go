package testkit

import (
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

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
