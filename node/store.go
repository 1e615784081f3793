package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/presence-cluster/presence/store"
)

// Configuration errors a caller may want to explain in its own terms
// (cmd/presenced names the setting).
var (
	// ErrUnknownStore: Config.Store names no store kind.
	ErrUnknownStore = errors.New("want bolt, memory or a postgres:// URL")
	// ErrBoltCluster: a clustered node (seeds set) on the bolt store.
	// ErrShortSecret: an HS256 secret shorter than MinSecretLen bytes.
	ErrShortSecret = fmt.Errorf("an HS256 secret must be at least %d bytes (256 bits, the HMAC-SHA256 output size)", MinSecretLen)
	ErrBoltCluster = errors.New("the bolt store keeps state in a file of this node only, so a cluster (seeds set) would lose users that move between nodes: use a postgres:// URL shared by every node, or the memory store for an ephemeral cluster")
)

// Validate reports what Start would refuse in cfg before anything is
// opened: a clustered node on the bolt store (ErrBoltCluster), a bad
// gossip key (cluster.ErrSecretKey), an exposed cluster without
// authenticated remoting (ErrInsecureCluster), an HS256 secret too short
// (ErrShortSecret).
func (c Config) Validate() error { return c.withDefaults().check() }

// MinSecretLen is the shortest HS256 secret accepted, in bytes.
const MinSecretLen = 32

// check refuses configurations that cannot work or are unsafe.
func (c Config) check() error {
	if !c.Standalone && len(c.Membership.Seeds) > 0 && storeKind(c.Store) == "bolt" {
		return ErrBoltCluster
	}
	if c.Auth.Secret != "" && len(c.Auth.Secret) < MinSecretLen {
		return ErrShortSecret
	}
	return c.checkSecurity()
}

// openStore opens the configured store (or wraps the shared one so this
// node does not close it).
func openStore(cfg Config) (store.Store, error) {
	if cfg.SharedStore != nil {
		return nopCloser{cfg.SharedStore}, nil
	}
	switch kind := storeKind(cfg.Store); kind {
	case "memory":
		return store.NewMemory(), nil
	case "bolt":
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("create data dir: %w", err)
		}
		s, err := store.OpenBolt(filepath.Join(cfg.DataDir, BoltFileName), store.BoltOptions{MaxBatchDelay: 2 * time.Millisecond})
		if err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
		return s, nil
	case "postgres":
		return store.OpenLazy(func(ctx context.Context) (store.Store, error) {
			return store.OpenPostgres(ctx, cfg.Store, store.PostgresOptions{Logger: cfg.Logger})
		}, cfg.Logger)
	default:
		return nil, fmt.Errorf("store %q: %w", cfg.Store, ErrUnknownStore)
	}
}

func storeKind(s string) string {
	if strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") {
		return "postgres"
	}
	return s
}

// pingStore reports whether the store's backend answers, for /readyz.
func pingStore(s store.Store) error {
	p, ok := s.(store.Pinger)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := p.Ping(ctx); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// nopCloser keeps a node from closing a store it shares with others.
type nopCloser struct{ store.Store }

func (nopCloser) Close() error { return nil }
