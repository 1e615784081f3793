package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/presence-cluster/presence/api/auth"
)

// Environment variables shared with presenced. The issuer and audience ones
// are read here so that a daemon configured to check iss/aud still accepts
// the minted token when both run in the same environment.
const (
	envDataDir   = "PRESENCE_DATA_DIR"
	envJWTSecret = "PRESENCE_JWT_SECRET"
	envIssuer    = "PRESENCE_JWT_ISSUER"
	envAudience  = "PRESENCE_JWT_AUDIENCE"
)

// runToken mints an HS256 token with the same secret the local daemon uses,
// so developers and scripts can call the API without an identity provider.
// It never creates the secret: a token signed with a key the daemon does not
// know would only produce confusing 401s.
func runToken(args []string, stdout, stderr io.Writer) error {
	flags := newFlagSet("token", "--user ID --username NAME [--admin] [--ttl 1h] [--data-dir DIR] [--secret S] [--issuer I] [--audience A]", stderr)
	var (
		userID   = flags.Int64("user", 0, "user `ID` for the sub claim (required, positive)")
		username = flags.String("username", "", "display `NAME` for the username claim (required)")
		admin    = flags.Bool("admin", false, "add is_admin: true (admin endpoints)")
		ttl      = flags.Duration("ttl", time.Hour, "token lifetime")
		dataDir  = flags.String("data-dir", envOr(envDataDir, "./data"), "daemon data `DIR` holding the generated secret (env "+envDataDir+")")
		secret   = flags.String("secret", "", "HS256 secret; overrides env "+envJWTSecret+" and the data directory's secret")
		issuer   = flags.String("issuer", envOr(envIssuer, ""), "iss claim (env "+envIssuer+")")
		audience = flags.String("audience", envOr(envAudience, ""), "aud claim (env "+envAudience+")")
	)
	if err := parseFlags(flags, args); err != nil {
		return err
	}
	switch {
	case *userID <= 0:
		return usageErrorf(flags, "--user must be a positive integer")
	case *username == "":
		return usageErrorf(flags, "--username is required")
	case *ttl <= 0:
		return usageErrorf(flags, "--ttl must be positive")
	}

	key, err := tokenSecret(*secret, *dataDir)
	if err != nil {
		return err
	}
	tok, err := auth.Mint(key, auth.MintClaims{
		UserID:   *userID,
		Username: *username,
		Admin:    *admin,
		TTL:      *ttl,
		Issuer:   *issuer,
		Audience: *audience,
	})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}

// tokenSecret picks the secret in the daemon's order of precedence: explicit
// flag, then environment, then the file the daemon generated.
func tokenSecret(flagSecret, dataDir string) ([]byte, error) {
	if flagSecret != "" {
		return []byte(flagSecret), nil
	}
	if s := envOr(envJWTSecret, ""); s != "" {
		return []byte(s), nil
	}
	key, err := auth.ReadSecret(dataDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no JWT secret: %s does not exist.\n"+
			"Start presenced once with the same data directory (it generates the secret there),\n"+
			"or pass --secret / set %s to the daemon's secret",
			filepath.Join(dataDir, auth.SecretFileName), envJWTSecret)
	}
	return key, err
}
