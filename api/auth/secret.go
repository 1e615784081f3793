package auth

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// SecretFileName is the generated HS256 secret inside the data directory.
// The daemon creates it when no key is configured, and presencectl reads it,
// so a fresh checkout works without any key setup.
const SecretFileName = "jwt-secret"

// secretRandomBytes is 256 bits, the HS256 output size; a shorter HMAC key
// would be the weakest link.
const secretRandomBytes = 32

// The secret is the file's text (base64url of 32 random bytes, the trailing
// newline dropped), not the decoded bytes. That way
// PRESENCE_JWT_SECRET="$(cat data/jwt-secret)" gives another node or tool
// exactly the same key, because a secret from the environment is used as its
// bytes too.

// ReadSecret returns the generated secret without ever creating it, for
// tools like presencectl that must not invent a key the daemon does not
// know. A missing file is reported as an error wrapping fs.ErrNotExist.
func ReadSecret(dataDir string) ([]byte, error) {
	path := filepath.Join(dataDir, SecretFileName)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: read secret: %w", err)
	}
	secret := bytes.TrimSpace(data)
	if len(secret) == 0 {
		return nil, fmt.Errorf("auth: secret file %s is empty", path)
	}
	return secret, nil
}

// LoadOrCreateSecret returns the data directory's secret, creating it on
// first use (directory 0700, file 0600). Creation is atomic: the file is
// written under a temporary name and linked into place, so two processes
// starting together agree on one secret and a reader never sees a partial
// file.
func LoadOrCreateSecret(dataDir string) ([]byte, error) {
	secret, err := ReadSecret(dataDir)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return secret, err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("auth: create data dir: %w", err)
	}
	raw := make([]byte, secretRandomBytes)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("auth: generate secret: %w", err)
	}
	text := base64.RawURLEncoding.EncodeToString(raw) + "\n"

	tmp, err := os.CreateTemp(dataDir, "."+SecretFileName+".tmp-*") // mode 0600
	if err != nil {
		return nil, fmt.Errorf("auth: create secret: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(text); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("auth: write secret: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("auth: write secret: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("auth: write secret: %w", err)
	}
	// Link, unlike rename, fails when the target exists: whoever links
	// first wins, and everyone else reads the winner's secret.
	if err := os.Link(tmp.Name(), filepath.Join(dataDir, SecretFileName)); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("auth: install secret: %w", err)
	}
	return ReadSecret(dataDir)
}
