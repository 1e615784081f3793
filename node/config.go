package node

import (
	"cmp"
	"log/slog"
	"os"
	"time"

	"github.com/presence-cluster/presence/actors"
	"github.com/presence-cluster/presence/api"
	"github.com/presence-cluster/presence/api/auth"
	"github.com/presence-cluster/presence/cluster"
	"github.com/presence-cluster/presence/routing"
	"github.com/presence-cluster/presence/store"
	"github.com/presence-cluster/presence/webhook"
)

// Defaults of the node-level settings.
const (
	DefaultHTTPAddr        = ":8000"
	DefaultDataDir         = "./data"
	DefaultStore           = "bolt"
	DefaultLastSeenFlush   = time.Second
	DefaultShutdownTimeout = 20 * time.Second
	DefaultJWTLeeway       = 30 * time.Second
	// NoJWTLeeway, as AuthConfig.Leeway, allows no clock skew at all
	// (PRESENCE_JWT_LEEWAY=0s); zero means DefaultJWTLeeway.
	NoJWTLeeway      = auth.NoLeeway
	DefaultDrainWait = time.Second
)

// BoltFileName is the embedded store's file inside the data directory.
const BoltFileName = "presence.db"

// Config is everything a node needs: node-level settings, and each part's
// own configuration nested. The zero value of a field means its default
// (see DefaultConfig), filled by the package that owns it.
type Config struct {
	// Name names this node (default: the host name).
	Name string
	// HTTPAddr is the HTTP and WebSocket listen address (default ":8000").
	HTTPAddr string
	// DataDir holds the embedded store and the generated dev secret
	// (default "./data").
	DataDir string
	// Store is "bolt" (a file in DataDir), "memory", or a postgres:// URL
	// (default "bolt").
	Store string
	// LastSeenFlush bounds how stale a stored last_seen may be: heartbeats
	// that change nothing else are written in batches at this interval
	// (default 1s).
	LastSeenFlush time.Duration
	// ShutdownTimeout bounds a graceful shutdown (default 20s).
	ShutdownTimeout time.Duration
	// DrainWait is how long a draining node keeps serving after announcing
	// it, so every member learns to route around it (default 1s).
	DrainWait time.Duration
	// Standalone runs the node without gossip and without actor remoting:
	// it owns every user and no other node can join. No cluster port is
	// opened. Single-node tests use it (two protoactor-go remotes in one
	// process trip the race detector).
	Standalone bool
	// InsecureCluster lets a clustered node listen beyond loopback with
	// neither the cluster key nor remoting mutual TLS (logged as a
	// warning at start); without it such a node refuses to start.
	InsecureCluster bool
	// PprofAddr, when set, serves net/http/pprof there; keep it on a local
	// interface (default: off).
	PprofAddr string
	// SharedStore, when set, is used instead of opening Store: in-process
	// nodes of a test cluster share one instance, as processes share a
	// database. The node does not close it.
	SharedStore store.Store
	// Logger receives the node's logs (default: slog.Default()).
	Logger *slog.Logger
	// Clock drives the user actors' timers; tests may inject a fake one.
	Clock actors.Clock

	// Auth configures bearer-token verification.
	Auth AuthConfig
	// Actors configures the user actors; the node supplies their store,
	// clock, logger, observer and handoff.
	Actors actors.Config
	// API configures the HTTP front.
	API api.Config
	// Membership configures gossip (ignored when Standalone).
	Membership cluster.Config
	// Routing configures actor remoting (ignored when Standalone).
	Routing routing.Config
	// Webhook configures the change feed for backends (off without URLs).
	Webhook webhook.Config
}

// AuthConfig configures how bearer tokens are verified.
type AuthConfig struct {
	// Secret is the HS256 secret; empty with no PublicKeys means a secret
	// generated into DataDir.
	Secret string
	// PublicKeys is a PEM or JWKS file of RS256/ES256/EdDSA public keys.
	PublicKeys string
	// Issuer and Audience, when set, must match the token's claims.
	Issuer   string
	Audience string
	// Leeway is the clock skew allowed on exp/nbf/iat, and how long a
	// WebSocket session outlives its token's exp: zero means the default
	// (30s), NoJWTLeeway (any negative value) none.
	Leeway time.Duration
	// ReloadInterval, when set, re-reads PublicKeys this often, so rotated
	// keys are picked up without a restart (ReloadKeys does it at once).
	ReloadInterval time.Duration
}

// DefaultConfig returns a Config with every default filled in, the nested
// parts' from their own DefaultConfig.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	return Config{
		Name:            host,
		HTTPAddr:        DefaultHTTPAddr,
		DataDir:         DefaultDataDir,
		Store:           DefaultStore,
		LastSeenFlush:   DefaultLastSeenFlush,
		ShutdownTimeout: DefaultShutdownTimeout,
		DrainWait:       DefaultDrainWait,
		Auth:            AuthConfig{Leeway: DefaultJWTLeeway},
		Actors:          actors.DefaultConfig(),
		API:             api.DefaultConfig(),
		Membership:      cluster.DefaultConfig(),
		Routing:         routing.DefaultConfig(),
		Webhook:         webhook.DefaultConfig(),
	}
}

// withDefaults fills the zero node-level fields of c from DefaultConfig;
// the nested parts fill their own.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	c.Name = cmp.Or(c.Name, d.Name)
	c.HTTPAddr = cmp.Or(c.HTTPAddr, d.HTTPAddr)
	c.DataDir = cmp.Or(c.DataDir, d.DataDir)
	c.Store = cmp.Or(c.Store, d.Store)
	setDefault(&c.LastSeenFlush, d.LastSeenFlush)
	setDefault(&c.ShutdownTimeout, d.ShutdownTimeout)
	setDefault(&c.DrainWait, d.DrainWait)
	if c.Auth.Leeway == 0 {
		c.Auth.Leeway = d.Auth.Leeway
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.SharedStore != nil {
		c.Store = "shared"
	}
	return c
}

// setDefault sets *p to v when *p is zero or negative.
func setDefault(p *time.Duration, v time.Duration) {
	if *p <= 0 {
		*p = v
	}
}
