package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/presence-cluster/presence/node"
)

// setting is one configuration knob: a flag and a PRESENCE_* variable.
// A flag given on the command line wins over the variable, which wins over
// the default.
type setting struct {
	flag, env, usage string
	secret           bool
	value            flag.Value
}

func settings(c *node.Config) []setting {
	return append([]setting{
		{"http-addr", "PRESENCE_HTTP_ADDR", "HTTP and WebSocket listen address", false, stringValue{&c.HTTPAddr}},
		{"data-dir", "PRESENCE_DATA_DIR", "embedded store and generated dev secret", false, stringValue{&c.DataDir}},
		{"store", "PRESENCE_STORE", "bolt (file in the data dir), memory, or a postgres:// URL", true, stringValue{&c.Store}},
		{"jwt-secret", "PRESENCE_JWT_SECRET", "HS256 secret, at least 32 bytes (default: generated into the data dir)", true, secretValue{&c.Auth.Secret, node.MinSecretLen}},
		{"jwt-public-keys", "PRESENCE_JWT_PUBLIC_KEYS", "PEM or JWKS file of RS256/ES256/EdDSA public keys", false, stringValue{&c.Auth.PublicKeys}},
		{"jwt-issuer", "PRESENCE_JWT_ISSUER", "required iss claim (default: not checked)", false, stringValue{&c.Auth.Issuer}},
		{"jwt-audience", "PRESENCE_JWT_AUDIENCE", "required aud claim (default: not checked)", false, stringValue{&c.Auth.Audience}},
		{"jwt-leeway", "PRESENCE_JWT_LEEWAY", "clock skew allowed on exp/nbf/iat", false, durationValue{&c.Auth.Leeway, zeroMeansNone}},
		{"offline-after", "PRESENCE_OFFLINE_AFTER", "no heartbeat and no WebSocket for this long: offline", false, durationValue{&c.Actors.OfflineAfter, positive}},
		{"disconnect-grace", "PRESENCE_DISCONNECT_GRACE", "last WebSocket closed for this long: offline", false, durationValue{&c.Actors.DisconnectGrace, positive}},
		{"passivate-after", "PRESENCE_PASSIVATE_AFTER", "idle user actors are stopped after this long", false, durationValue{&c.Actors.PassivateAfter, positive}},
		{"activator-shards", "PRESENCE_ACTIVATOR_SHARDS", "activator shards a node's users are split over by user id, each with its own mailbox (default: GOMAXPROCS)", false, derivedSizeValue{sizeValue{&c.Actors.Shards, 1, 1024}}},
		{"last-seen-flush", "PRESENCE_LAST_SEEN_FLUSH", "most a stored last_seen lags behind heartbeats", false, durationValue{&c.LastSeenFlush, positive}},
		{"ws-max-frame", "PRESENCE_WS_MAX_FRAME", "largest WebSocket frame accepted from a client", false, sizeValue{&c.API.WS.MaxFrame, 512, 16 << 20}},
		{"ws-max-subscriptions", "PRESENCE_WS_MAX_SUBSCRIPTIONS", "users one WebSocket session may subscribe to", false, sizeValue{&c.API.WS.MaxSubscriptions, 1, 100_000}},
		{"ws-max-sessions-per-user", "PRESENCE_WS_MAX_SESSIONS_PER_USER", "WebSocket sessions one user may hold on a node", false, sizeValue{&c.API.WS.MaxSessionsPerUser, 1, 10_000}},
		{"ws-send-queue", "PRESENCE_WS_SEND_QUEUE", "frames queued per session before it is dropped as a slow consumer", false, sizeValue{&c.API.WS.SendQueue, 1, 1 << 16}},
		{"ws-writers", "PRESENCE_WS_WRITERS", "writer workers putting WebSocket frames on sockets that take them at once (default: GOMAXPROCS)", false, sizeValue{&c.API.WS.Writers, 1, 1024}},
		{"ws-ping-interval", "PRESENCE_WS_PING_INTERVAL", "WebSocket ping period; silent for twice this: dropped", false, durationValue{&c.API.WS.PingInterval, positive}},
		{"write-rate", "PRESENCE_WRITE_RATE", "writes (PUT, heartbeat) per second per user per node; negative: no limit", false, rateValue{&c.API.WriteRate, true}},
		{"heartbeat-budget", "PRESENCE_HEARTBEAT_BUDGET", "REST heartbeats per second this node aims at: above it, the advised heartbeat interval (and the users' offline deadline) grows; 0: no budget", false, countValue{&c.API.HeartbeatBudget, 0, 100_000_000}},
		{"write-burst", "PRESENCE_WRITE_BURST", "writes a user may make at once above the rate", false, sizeValue{&c.API.WriteBurst, 1, 1_000_000}},
		{"ws-frame-rate", "PRESENCE_WS_FRAME_RATE", "frames per second a WebSocket session may send", false, rateValue{&c.API.WS.FrameRate, false}},
		{"ws-frame-burst", "PRESENCE_WS_FRAME_BURST", "frames a session may send at once above the rate", false, sizeValue{&c.API.WS.FrameBurst, 1, 1_000_000}},
		{"header-limit", "PRESENCE_HEADER_LIMIT", "largest HTTP request head (431 beyond)", false, sizeValue{&c.API.HeaderLimit, 1 << 10, 1 << 20}},
		{"read-timeout", "PRESENCE_READ_TIMEOUT", "bound on reading one HTTP request", false, durationValue{&c.API.ReadTimeout, positive}},
		{"write-timeout", "PRESENCE_WRITE_TIMEOUT", "bound on writing one HTTP response", false, durationValue{&c.API.WriteTimeout, positive}},
		{"idle-timeout", "PRESENCE_IDLE_TIMEOUT", "idle keep-alive connections are closed after this", false, durationValue{&c.API.IdleTimeout, positive}},
		{"jwt-reload-interval", "PRESENCE_JWT_RELOAD_INTERVAL", "re-read PRESENCE_JWT_PUBLIC_KEYS this often; SIGHUP reloads at once (default: only on SIGHUP)", false, durationValue{&c.Auth.ReloadInterval, zeroMeansOff}},
		{"body-limit", "PRESENCE_BODY_LIMIT", "largest HTTP request body", false, sizeValue{&c.API.BodyLimit, 1 << 10, 16 << 20}},
		{"request-timeout", "PRESENCE_REQUEST_TIMEOUT", "bound on one request to a user actor", false, durationValue{&c.API.RequestTimeout, positive}},
		{"shutdown-timeout", "PRESENCE_SHUTDOWN_TIMEOUT", "bound on a graceful shutdown", false, durationValue{&c.ShutdownTimeout, positive}},
		{"allowed-origins", "PRESENCE_ALLOWED_ORIGINS", "comma-separated browser origins (https://app.example.com) or *: CORS for REST, Origin check on WebSocket (default: no CORS, any WebSocket origin)", false, originsValue{listValue{&c.API.AllowedOrigins}}},
		{"pprof-addr", "PRESENCE_PPROF_ADDR", "serve net/http/pprof here, e.g. 127.0.0.1:6060 (default: off)", false, stringValue{&c.PprofAddr}},
		{"node-name", "PRESENCE_NODE_NAME", "this member's name", false, stringValue{&c.Name}},
		{"standalone", "PRESENCE_STANDALONE", "true: no gossip and no remoting, a single node nobody can join", false, boolValue{&c.Standalone}},
		{"gossip-addr", "PRESENCE_GOSSIP_ADDR", "memberlist bind address (default: 127.0.0.1:7946; with PRESENCE_REMOTE_ADDR, its host; with PRESENCE_SEEDS alone, :7946)", false, stringValue{&c.Membership.BindAddr}},
		{"gossip-advertise", "PRESENCE_GOSSIP_ADVERTISE", "address other members reach this one at (default: derived)", false, stringValue{&c.Membership.Advertise}},
		{"gossip-key", "PRESENCE_GOSSIP_KEY", "cluster key: base64 AES key (16, 24 or 32 bytes) encrypting gossip and authenticating actor remoting", true, stringValue{&c.Membership.SecretKey}},
		{"remote-addr", "PRESENCE_REMOTE_ADDR", "actor remoting bind address (default: 127.0.0.1:8090; with PRESENCE_GOSSIP_ADDR, its host; with PRESENCE_SEEDS alone, :8090)", false, stringValue{&c.Routing.BindAddr}},
		{"remote-advertise", "PRESENCE_REMOTE_ADVERTISE", "address other members send actor messages to (default: derived)", false, stringValue{&c.Routing.Advertise}},
		{"remote-tls-cert", "PRESENCE_REMOTE_TLS_CERT", "PEM certificate for mutual TLS on actor remoting (with _KEY and _CA)", false, stringValue{&c.Routing.TLS.CertFile}},
		{"remote-tls-key", "PRESENCE_REMOTE_TLS_KEY", "PEM private key for remoting TLS", false, stringValue{&c.Routing.TLS.KeyFile}},
		{"remote-tls-ca", "PRESENCE_REMOTE_TLS_CA", "PEM CA that signs every node's remoting certificate", false, stringValue{&c.Routing.TLS.CAFile}},
		{"remote-tls-server-name", "PRESENCE_REMOTE_TLS_SERVER_NAME", "name (DNS SAN) every remoting certificate carries", false, stringValue{&c.Routing.TLS.ServerName}},
		{"insecure-cluster", "PRESENCE_INSECURE_CLUSTER", "true: allow gossip/remoting beyond loopback without PRESENCE_GOSSIP_KEY or PRESENCE_REMOTE_TLS_* (anyone reaching the remoting port can read and change every user)", false, boolValue{&c.InsecureCluster}},
		{"seeds", "PRESENCE_SEEDS", "comma-separated host:port or DNS names of members to join", false, listValue{&c.Membership.Seeds}},
		{"rejoin-interval", "PRESENCE_REJOIN_INTERVAL", "how often the seeds are joined again (heals partitions)", false, durationValue{&c.Membership.RejoinInterval, positive}},
		{"gossip-probe-interval", "PRESENCE_GOSSIP_PROBE_INTERVAL", "failure detection: time between probes of a member", false, durationValue{&c.Membership.Detection.ProbeInterval, positive}},
		{"gossip-probe-timeout", "PRESENCE_GOSSIP_PROBE_TIMEOUT", "failure detection: wait for a probe's ack (above the network round trip)", false, durationValue{&c.Membership.Detection.ProbeTimeout, positive}},
		{"gossip-suspicion-mult", "PRESENCE_GOSSIP_SUSPICION_MULT", "failure detection: a suspect is declared dead after this many probe intervals (x log10 of the members, at least 1)", false, sizeValue{&c.Membership.Detection.SuspicionMult, 1, 100}},
		{"gossip-suspicion-max-mult", "PRESENCE_GOSSIP_SUSPICION_MAX_MULT", "failure detection: suspicion timeout bound while awaiting confirmations, as a multiple of it (1: fixed)", false, sizeValue{&c.Membership.Detection.SuspicionMaxTimeoutMult, 1, 100}},
		{"gossip-interval", "PRESENCE_GOSSIP_INTERVAL", "how often gossip (a death, a join) is passed on", false, durationValue{&c.Membership.Detection.GossipInterval, positive}},
		{"drain-wait", "PRESENCE_DRAIN_WAIT", "how long a draining node keeps answering while the others take over", false, durationValue{&c.DrainWait, positive}},
	}, webhookSettings(c)...)
}

// Loopback addresses of gossip and remoting on a node with no cluster
// setting (PRESENCE_SEEDS, PRESENCE_GOSSIP_ADDR, PRESENCE_REMOTE_ADDR): a
// default start opens only its HTTP port to the network.
const (
	loopbackGossipAddr = "127.0.0.1:7946"
	loopbackRemoteAddr = "127.0.0.1:8090"
)

// errVersion is returned by loadConfig for -version.
var errVersion = errors.New("version requested")

// defaultConfig is the configuration before the environment and flags:
// node.DefaultConfig with cluster ports on loopback.
func defaultConfig() node.Config {
	cfg := node.DefaultConfig()
	cfg.Membership.BindAddr, cfg.Routing.BindAddr = loopbackGossipAddr, loopbackRemoteAddr
	return cfg
}

// loadConfig builds the configuration from defaults, the environment and
// the command line, in that order of precedence (last wins). A value out
// of range is an error naming its variable (or flag).
func loadConfig(args []string, getenv func(string) string, stderr io.Writer) (node.Config, error) {
	cfg := defaultConfig()
	fs := flag.NewFlagSet("presenced", flag.ContinueOnError)
	fs.SetOutput(stderr)
	all := settings(&cfg)
	for _, s := range all {
		if v := getenv(s.env); v != "" {
			if err := s.value.Set(v); err != nil && s.secret {
				return cfg, fmt.Errorf("%s: %w", s.env, err) // never echo a secret
			} else if err != nil {
				return cfg, fmt.Errorf("%s=%q: %w", s.env, v, err)
			}
		}
		fs.Var(s.value, s.flag, s.usage+" (env "+s.env+")")
	}
	version := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() { printUsage(stderr) }
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if *version {
		return cfg, errVersion
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	clusterPortDefaults(&cfg, isSet(getenv, fs, "PRESENCE_GOSSIP_ADDR", "gossip-addr"),
		isSet(getenv, fs, "PRESENCE_REMOTE_ADDR", "remote-addr"), isSet(getenv, fs, "PRESENCE_SEEDS", "seeds"))
	if err := checkWebhook(&cfg); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// clusterPortDefaults decides the cluster bind address not given: with no
// cluster setting both stay on loopback; one named address lends its host
// to the other (PRESENCE_GOSSIP_ADDR=10.0.0.5:7946 puts remoting on
// 10.0.0.5:8090, 127.0.0.1 keeps both local); seeds alone open both on
// every interface.
func clusterPortDefaults(cfg *node.Config, gossip, remote, seeds bool) {
	d := node.DefaultConfig()
	switch {
	case gossip && !remote:
		cfg.Routing.BindAddr = sameHost(cfg.Membership.BindAddr, d.Routing.BindAddr)
	case remote && !gossip:
		cfg.Membership.BindAddr = sameHost(cfg.Routing.BindAddr, d.Membership.BindAddr)
	case seeds && !gossip && !remote:
		cfg.Membership.BindAddr, cfg.Routing.BindAddr = d.Membership.BindAddr, d.Routing.BindAddr
	}
}

// sameHost is def's port on addr's host.
func sameHost(addr, def string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	_, port, _ := net.SplitHostPort(def)
	return net.JoinHostPort(host, port)
}

// isSet reports whether a setting was given by its variable or its flag.
func isSet(getenv func(string) string, fs *flag.FlagSet, env, name string) bool {
	set := getenv(env) != ""
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// printUsage writes -h: each flag with its type, variable, default and
// meaning.
func printUsage(w io.Writer) {
	fmt.Fprintln(w, "presenced: a presence node. Every flag also reads its PRESENCE_* variable;")
	fmt.Fprintln(w, "a flag wins over the variable, which wins over the default.")
	fmt.Fprintln(w, "\nUsage: presenced [flags]\n  -version\n        print the version and exit")
	d := defaultConfig()
	for _, s := range settings(&d) {
		typ := s.value.(interface{ Type() string }).Type()
		usage := s.usage
		if i := strings.Index(usage, " (default: "); i >= 0 && strings.HasSuffix(usage, ")") && s.value.String() == "" {
			usage = usage[:i] // the default line says it
		}
		fmt.Fprintf(w, "  -%s %s\n        %s\n        env %s, default %s\n", s.flag, typ, usage, s.env, shown(s, s.value.String()))
	}
}

// shown is how a value is printed: secrets masked, and an empty value as
// what it means (the "(default: ...)" of its usage, else "(none)").
func shown(s setting, v string) string {
	if s.secret && v != "" && v != "bolt" && v != "memory" {
		v = mask(v)
	}
	if v != "" {
		return v
	}
	if i := strings.Index(s.usage, "(default: "); i >= 0 {
		rest := s.usage[i+len("(default: "):]
		if j := strings.IndexAny(rest, ";)"); j >= 0 {
			return "(" + rest[:j] + ")"
		}
	}
	return "(none)"
}

// printConfig writes the effective configuration, secrets masked, one
// aligned line per setting.
func printConfig(w io.Writer, cfg *node.Config) {
	fmt.Fprintln(w, "presenced "+version+" configuration:")
	all := settings(cfg)
	width := 0
	for _, s := range all {
		width = max(width, len(s.env))
	}
	for _, s := range all {
		fmt.Fprintf(w, "  %-*s %s\n", width, s.env, shown(s, s.value.String()))
	}
}

// mask hides a secret; for a URL it keeps the scheme and host so operators
// can still see where the node points.
func mask(v string) string {
	if i := strings.Index(v, "://"); i >= 0 {
		rest := v[i+3:]
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			return v[:i+3] + "****@" + rest[at+1:]
		}
		return v
	}
	return "****"
}
