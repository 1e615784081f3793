package auth

import (
	"errors"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// MintClaims describes a token to issue. Only HS256 dev and test tokens are
// minted here; production tokens come from the identity provider.
type MintClaims struct {
	UserID   int64
	Username string
	Admin    bool
	// TTL is required: a token without an expiry would be refused anyway.
	TTL      time.Duration
	Issuer   string
	Audience string
}

type mintedClaims struct {
	jwt.RegisteredClaims
	Username string `json:"username,omitempty"`
	IsAdmin  bool   `json:"is_admin,omitempty"`
}

// Mint issues an HS256 token that a Verifier configured with the same
// secret accepts, so presencectl, tests and load generators need no
// identity provider.
func Mint(secret []byte, c MintClaims) (string, error) {
	if len(secret) == 0 {
		return "", errors.New("auth: mint: empty secret")
	}
	if c.UserID <= 0 {
		return "", errors.New("auth: mint: user id must be a positive integer")
	}
	if c.TTL <= 0 {
		return "", errors.New("auth: mint: TTL must be positive")
	}
	now := time.Now()
	mc := mintedClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   strconv.FormatInt(c.UserID, 10),
			Issuer:    c.Issuer,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(c.TTL)),
		},
		Username: c.Username,
		IsAdmin:  c.Admin,
	}
	if c.Audience != "" {
		mc.Audience = jwt.ClaimStrings{c.Audience}
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, mc).SignedString(secret)
}
