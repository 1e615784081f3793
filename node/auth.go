package node

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/presence-cluster/presence/api/auth"
)

// openVerifier builds the token verifier: the configured secret or public
// keys, else a secret generated into the data directory (development).
func (n *Node) openVerifier() error {
	c := n.cfg.Auth
	ac := auth.Config{PublicKeysFile: c.PublicKeys, Issuer: c.Issuer, Audience: c.Audience, Leeway: c.Leeway}
	switch {
	case c.Secret != "":
		ac.Secret = []byte(c.Secret)
	case c.PublicKeys == "":
		secret, err := auth.LoadOrCreateSecret(n.cfg.DataDir)
		if err != nil {
			return fmt.Errorf("dev JWT secret: %w", err)
		}
		ac.Secret = secret
		n.log.Info("no JWT key configured: using the generated secret; mint tokens with presencectl token",
			slog.String("file", filepath.Join(n.cfg.DataDir, auth.SecretFileName)))
	}
	v, err := auth.NewVerifier(ac)
	if err != nil {
		return fmt.Errorf("JWT verifier: %w", err)
	}
	n.verifier = v
	return nil
}

// ReloadKeys re-reads the JWT public key file (Auth.PublicKeys), so
// rotated keys take effect without a restart. On error the keys in use
// stay. presenced calls it on SIGHUP.
func (n *Node) ReloadKeys() error {
	if n.cfg.Auth.PublicKeys == "" {
		return nil
	}
	if err := n.verifier.Reload(); err != nil {
		n.log.Warn("JWT keys not reloaded; the previous keys stay in use", slog.Any("err", err))
		return fmt.Errorf("reload JWT keys: %w", err)
	}
	n.log.Info("JWT keys reloaded", slog.String("file", n.cfg.Auth.PublicKeys))
	return nil
}

func (n *Node) reloadKeysEvery(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-n.stopped:
			return
		case <-t.C:
			_ = n.ReloadKeys()
		}
	}
}
