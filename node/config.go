package cluster

import (
	"log/slog"

	"github.com/hashicorp/memberlist"
	"os"
	"time"

	"github.com/presence-cluster/presence/actors"
	"github.com/presence-cluster/presence/api"
	"github.com/presence-cluster/presence/store"
)

// Config is everything a node needs. The zero value of a field means its
// documented default (see Defaults); cmd/presenced fills it from flags and
// PRESENCE_* environment variables.
type Config struct {
	// NodeName names this member (default: the host name).
	NodeName string
	// HTTPAddr is the HTTP and WebSocket listen address (default ":8000").
	HTTPAddr string
	// DataDir holds the embedded store and the generated dev secret
	// (default "./data").
	DataDir string
	// Store is "bolt" (a file in DataDir), "memory", or a postgres:// URL
	// (default "bolt").
	Store string

	// JWTSecret is the HS256 secret; empty with no public keys means a
	// secret generated into DataDir.
	JWTSecret string
	// JWTPublicKeys is a PEM or JWKS file of RS256/ES256/EdDSA public keys.
	JWTPublicKeys string
	// JWTIssuer and JWTAudience, when set, must match the token's claims.
	JWTIssuer   string
	JWTAudience string
	// JWTLeeway is the clock skew allowed on exp/nbf/iat (default 30s).
	JWTLeeway time.Duration

	// OfflineAfter: no heartbeat and no WebSocket for this long is offline
	// (default 5m).
	OfflineAfter time.Duration
	// DisconnectGrace: the last WebSocket closed for this long is offline
	// (default 15s).
	DisconnectGrace time.Duration
	// PassivateAfter: an idle user actor is stopped after this long
	// (default 2m).
	PassivateAfter time.Duration
	// LastSeenFlush bounds how stale a stored last_seen may be: heartbeats
	// that change nothing else are written in batches at this interval
	// (default 1s).
	LastSeenFlush time.Duration

	// WSMaxFrame is the largest WebSocket frame accepted from a client; a
	// larger one closes the session with 1009 (default 64 KiB).
	WSMaxFrame int
	// WSMaxSubscriptions caps the users one session subscribes to
	// (default 1000).
	WSMaxSubscriptions int
	// WSMaxSessionsPerUser caps one user's sessions on a node (default 10).
	WSMaxSessionsPerUser int
	// WSSendQueue is a session's outbound queue in frames; a client that
	// lets it fill is disconnected as a slow consumer (default 256).
	WSSendQueue int
	// WSPingInterval is how often sessions are pinged; a client silent for
	// twice this long is dropped (default 30s).
	WSPingInterval time.Duration

	// WriteRate and WriteBurst limit each user's writes (PUT status,
	// heartbeat) per node: 429 with Retry-After beyond (default 5/s, burst
	// 20). A negative WriteRate disables the limit.
	WriteRate  float64
	WriteBurst int
	// WSFrameRate and WSFrameBurst limit each session's frames (default
	// 20/s, burst 60).
	WSFrameRate  float64
	WSFrameBurst int

	// HeaderLimit is the largest HTTP request head (431 beyond; default
	// 8 KiB). ReadTimeout, WriteTimeout and IdleTimeout bound reading a
	// request, writing a response and an idle keep-alive connection
	// (defaults 10s, 10s, 120s), so slow clients cannot hold a node.
	HeaderLimit  int
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	IdleTimeout  time.Duration
	// JWTReloadInterval, when set, re-reads JWTPublicKeys this often, so
	// rotated keys are picked up without a restart (SIGHUP does it at once).
	JWTReloadInterval time.Duration

	// BodyLimit is the largest HTTP request body (default 16 KiB).
	BodyLimit int
	// RequestTimeout bounds one request to a user actor (default 5s).
	RequestTimeout time.Duration
	// ShutdownTimeout bounds a graceful shutdown (default 20s).
	ShutdownTimeout time.Duration

	// Standalone runs the node without gossip and without actor remoting:
	// it owns every user and no other node can join. No cluster port is
	// opened. Single-node tests use it (two protoactor-go remotes in one
	// process trip the race detector).
	Standalone bool
	// GossipAddr is the memberlist bind address (default ":7946").
	GossipAddr string
	// GossipAdvertise is the address other members reach this one at
	// (default: derived from the bind address or a private IP).
	GossipAdvertise string
	// GossipKey is a base64 AES key (16, 24 or 32 bytes) encrypting gossip.
	GossipKey string
	// RemoteAddr is the actor remoting bind address (default ":8090").
	RemoteAddr string
	// RemoteTLS turns on mutual TLS for actor remoting (default: off, plain
	// gRPC: keep the port on a private network then).
	RemoteTLS RemoteTLS
	// RemoteAdvertise is the address other members send actor messages to
	// (default: the gossip advertise host with RemoteAddr's port).
	RemoteAdvertise string
	// Seeds are host:port addresses or DNS names (every address they
	// resolve to is tried) of members to join; none makes a one-node
	// cluster that others may join.
	Seeds []string
	// RejoinInterval is how often the seeds are joined again, which heals
	// a partition after both sides declared each other dead (default 15s).
	RejoinInterval time.Duration
	// DrainWait is how long a draining node keeps serving after announcing
	// it, so every member learns to route around it (default 1s).
	DrainWait time.Duration
	// TuneGossip, when set, adjusts the memberlist configuration before
	// start: tests use it for faster failure detection and fault injection.
	TuneGossip func(*memberlist.Config)

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
}

// Defaults of Config.
const (
	DefaultHTTPAddr        = ":8000"
	DefaultDataDir         = "./data"
	DefaultStore           = "bolt"
	DefaultLastSeenFlush   = time.Second
	DefaultShutdownTimeout = 20 * time.Second
	DefaultJWTLeeway       = 30 * time.Second
	DefaultDrainWait       = time.Second
)

// Defaults returns a Config with every default filled in.
func Defaults() Config {
	host, _ := os.Hostname()
	return Config{
		NodeName:        host,
		HTTPAddr:        DefaultHTTPAddr,
		DataDir:         DefaultDataDir,
		Store:           DefaultStore,
		JWTLeeway:       DefaultJWTLeeway,
		OfflineAfter:    actors.DefaultOfflineAfter,
		DisconnectGrace: actors.DefaultDisconnectGrace,
		PassivateAfter:  actors.DefaultPassivateAfter,
		LastSeenFlush:   DefaultLastSeenFlush,
		BodyLimit:       api.DefaultBodyLimit,

		WSMaxFrame:           api.DefaultWSMaxFrame,
		WSMaxSubscriptions:   api.DefaultWSMaxSubscriptions,
		WSMaxSessionsPerUser: api.DefaultWSMaxSessionsPerUser,
		WSSendQueue:          api.DefaultWSSendQueue,
		WSPingInterval:       api.DefaultWSPingInterval,
		WriteRate:            api.DefaultWriteRate,
		WriteBurst:           api.DefaultWriteBurst,
		WSFrameRate:          api.DefaultWSFrameRate,
		WSFrameBurst:         api.DefaultWSFrameBurst,
		RequestTimeout:       api.DefaultRequestTimeout,
		ShutdownTimeout:      DefaultShutdownTimeout,
		HeaderLimit:          api.DefaultHeaderLimit,
		ReadTimeout:          api.DefaultReadTimeout,
		WriteTimeout:         api.DefaultWriteTimeout,
		IdleTimeout:          api.DefaultIdleTimeout,
		GossipAddr:           DefaultGossipAddr,
		RemoteAddr:           DefaultRemoteAddr,
		RejoinInterval:       DefaultRejoinInterval,
		DrainWait:            DefaultDrainWait,
	}
}

// withDefaults fills the zero fields of c from Defaults.
func (c Config) withDefaults() Config {
	d := Defaults()
	if c.NodeName == "" {
		c.NodeName = d.NodeName
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = d.HTTPAddr
	}
	if c.DataDir == "" {
		c.DataDir = d.DataDir
	}
	if c.Store == "" {
		c.Store = d.Store
	}
	if c.JWTLeeway == 0 {
		c.JWTLeeway = d.JWTLeeway
	}
	if c.OfflineAfter <= 0 {
		c.OfflineAfter = d.OfflineAfter
	}
	if c.DisconnectGrace <= 0 {
		c.DisconnectGrace = d.DisconnectGrace
	}
	if c.PassivateAfter <= 0 {
		c.PassivateAfter = d.PassivateAfter
	}
	if c.LastSeenFlush <= 0 {
		c.LastSeenFlush = d.LastSeenFlush
	}
	if c.BodyLimit <= 0 {
		c.BodyLimit = d.BodyLimit
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = d.RequestTimeout
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = d.ShutdownTimeout
	}
	if c.GossipAddr == "" {
		c.GossipAddr = d.GossipAddr
	}
	if c.RemoteAddr == "" {
		c.RemoteAddr = d.RemoteAddr
	}
	if c.RejoinInterval <= 0 {
		c.RejoinInterval = d.RejoinInterval
	}
	if c.DrainWait <= 0 {
		c.DrainWait = d.DrainWait
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}
