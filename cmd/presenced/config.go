package main

import (
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

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

type durationValue struct{ p *time.Duration }

func (d durationValue) String() string {
	if d.p == nil {
		return ""
	}
	return d.p.String()
}
func (d durationValue) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a Go duration such as 90s or 5m: %w", err)
	}
	*d.p = v
	return nil
}

// leewayValue is PRESENCE_JWT_LEEWAY: a duration where 0s means no leeway
// at all (node.NoJWTLeeway), not the default that a zero field stands for.
type leewayValue struct{ p *time.Duration }

func (d leewayValue) String() string {
	if d.p == nil {
		return ""
	}
	return max(*d.p, 0).String()
}
func (d leewayValue) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("want a duration of 0s or more, such as 30s")
	}
	if v == 0 {
		v = node.NoJWTLeeway
	}
	*d.p = v
	return nil
}

type stringValue struct{ p *string }

func (v stringValue) String() string {
	if v.p == nil {
		return ""
	}
	return *v.p
}
func (v stringValue) Set(s string) error { *v.p = s; return nil }

type boolValue struct{ p *bool }

func (v boolValue) String() string {
	if v.p == nil {
		return ""
	}
	return strconv.FormatBool(*v.p)
}
func (v boolValue) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("want true or false")
	}
	*v.p = b
	return nil
}
func (v boolValue) IsBoolFlag() bool { return true }

type floatValue struct{ p *float64 }

func (v floatValue) String() string {
	if v.p == nil {
		return ""
	}
	return strconv.FormatFloat(*v.p, 'g', -1, 64)
}
func (v floatValue) Set(s string) error {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("want a number")
	}
	*v.p = f
	return nil
}

type listValue struct{ p *[]string }

func (v listValue) String() string {
	if v.p == nil {
		return ""
	}
	return strings.Join(*v.p, ",")
}
func (v listValue) Set(s string) error {
	*v.p = (*v.p)[:0]
	for part := range strings.SplitSeq(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*v.p = append(*v.p, part)
		}
	}
	return nil
}

// sizeValue is a byte size: a number with an optional KiB/MiB suffix.
type sizeValue struct{ p *int }

func (v sizeValue) String() string {
	if v.p == nil {
		return ""
	}
	return strconv.Itoa(*v.p)
}
func (v sizeValue) Set(s string) error {
	mult := 1
	t := strings.TrimSpace(s)
	for _, u := range []struct {
		suffix string
		mult   int
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"KB", 1000}, {"MB", 1000 * 1000}, {"B", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.Atoi(t)
	if err != nil || n <= 0 {
		return fmt.Errorf("want a positive size such as 65536 or 64KiB")
	}
	*v.p = n * mult
	return nil
}

func settings(c *node.Config) []setting {
	return append([]setting{
		{"http-addr", "PRESENCE_HTTP_ADDR", "HTTP and WebSocket listen address", false, stringValue{&c.HTTPAddr}},
		{"data-dir", "PRESENCE_DATA_DIR", "embedded store and generated dev secret", false, stringValue{&c.DataDir}},
		{"store", "PRESENCE_STORE", "bolt (file in the data dir), memory, or a postgres:// URL", true, stringValue{&c.Store}},
		{"jwt-secret", "PRESENCE_JWT_SECRET", "HS256 secret (default: generated into the data dir)", true, stringValue{&c.Auth.Secret}},
		{"jwt-public-keys", "PRESENCE_JWT_PUBLIC_KEYS", "PEM or JWKS file of RS256/ES256/EdDSA public keys", false, stringValue{&c.Auth.PublicKeys}},
		{"jwt-issuer", "PRESENCE_JWT_ISSUER", "required iss claim (default: not checked)", false, stringValue{&c.Auth.Issuer}},
		{"jwt-audience", "PRESENCE_JWT_AUDIENCE", "required aud claim (default: not checked)", false, stringValue{&c.Auth.Audience}},
		{"jwt-leeway", "PRESENCE_JWT_LEEWAY", "clock skew allowed on exp/nbf/iat", false, leewayValue{&c.Auth.Leeway}},
		{"offline-after", "PRESENCE_OFFLINE_AFTER", "no heartbeat and no WebSocket for this long: offline", false, durationValue{&c.Actors.OfflineAfter}},
		{"disconnect-grace", "PRESENCE_DISCONNECT_GRACE", "last WebSocket closed for this long: offline", false, durationValue{&c.Actors.DisconnectGrace}},
		{"passivate-after", "PRESENCE_PASSIVATE_AFTER", "idle user actors are stopped after this long", false, durationValue{&c.Actors.PassivateAfter}},
		{"last-seen-flush", "PRESENCE_LAST_SEEN_FLUSH", "most a stored last_seen lags behind heartbeats", false, durationValue{&c.LastSeenFlush}},
		{"ws-max-frame", "PRESENCE_WS_MAX_FRAME", "largest WebSocket frame accepted from a client", false, sizeValue{&c.API.WS.MaxFrame}},
		{"ws-max-subscriptions", "PRESENCE_WS_MAX_SUBSCRIPTIONS", "users one WebSocket session may subscribe to", false, sizeValue{&c.API.WS.MaxSubscriptions}},
		{"ws-max-sessions-per-user", "PRESENCE_WS_MAX_SESSIONS_PER_USER", "WebSocket sessions one user may hold on a node", false, sizeValue{&c.API.WS.MaxSessionsPerUser}},
		{"ws-send-queue", "PRESENCE_WS_SEND_QUEUE", "frames queued per session before it is dropped as a slow consumer", false, sizeValue{&c.API.WS.SendQueue}},
		{"ws-ping-interval", "PRESENCE_WS_PING_INTERVAL", "WebSocket ping period; silent for twice this: dropped", false, durationValue{&c.API.WS.PingInterval}},
		{"write-rate", "PRESENCE_WRITE_RATE", "writes (PUT, heartbeat) per second per user per node; negative: no limit", false, floatValue{&c.API.WriteRate}},
		{"write-burst", "PRESENCE_WRITE_BURST", "writes a user may make at once above the rate", false, sizeValue{&c.API.WriteBurst}},
		{"ws-frame-rate", "PRESENCE_WS_FRAME_RATE", "frames per second a WebSocket session may send", false, floatValue{&c.API.WS.FrameRate}},
		{"ws-frame-burst", "PRESENCE_WS_FRAME_BURST", "frames a session may send at once above the rate", false, sizeValue{&c.API.WS.FrameBurst}},
		{"header-limit", "PRESENCE_HEADER_LIMIT", "largest HTTP request head (431 beyond)", false, sizeValue{&c.API.HeaderLimit}},
		{"read-timeout", "PRESENCE_READ_TIMEOUT", "bound on reading one HTTP request", false, durationValue{&c.API.ReadTimeout}},
		{"write-timeout", "PRESENCE_WRITE_TIMEOUT", "bound on writing one HTTP response", false, durationValue{&c.API.WriteTimeout}},
		{"idle-timeout", "PRESENCE_IDLE_TIMEOUT", "idle keep-alive connections are closed after this", false, durationValue{&c.API.IdleTimeout}},
		{"jwt-reload-interval", "PRESENCE_JWT_RELOAD_INTERVAL", "re-read PRESENCE_JWT_PUBLIC_KEYS this often (SIGHUP reloads at once; default: only on SIGHUP)", false, durationValue{&c.Auth.ReloadInterval}},
		{"body-limit", "PRESENCE_BODY_LIMIT", "largest HTTP request body", false, sizeValue{&c.API.BodyLimit}},
		{"request-timeout", "PRESENCE_REQUEST_TIMEOUT", "bound on one request to a user actor", false, durationValue{&c.API.RequestTimeout}},
		{"shutdown-timeout", "PRESENCE_SHUTDOWN_TIMEOUT", "bound on a graceful shutdown", false, durationValue{&c.ShutdownTimeout}},
		{"pprof-addr", "PRESENCE_PPROF_ADDR", "serve net/http/pprof here, e.g. 127.0.0.1:6060 (default: off)", false, stringValue{&c.PprofAddr}},
		{"node-name", "PRESENCE_NODE_NAME", "this member's name", false, stringValue{&c.Name}},
		{"standalone", "PRESENCE_STANDALONE", "true: no gossip and no remoting, a single node nobody can join", false, boolValue{&c.Standalone}},
		{"gossip-addr", "PRESENCE_GOSSIP_ADDR", "memberlist bind address", false, stringValue{&c.Membership.BindAddr}},
		{"gossip-advertise", "PRESENCE_GOSSIP_ADVERTISE", "address other members reach this one at (default: derived)", false, stringValue{&c.Membership.Advertise}},
		{"gossip-key", "PRESENCE_GOSSIP_KEY", "base64 AES key (16, 24 or 32 bytes) encrypting gossip", true, stringValue{&c.Membership.SecretKey}},
		{"remote-addr", "PRESENCE_REMOTE_ADDR", "actor remoting bind address (internal: keep it off the internet)", false, stringValue{&c.Routing.BindAddr}},
		{"remote-advertise", "PRESENCE_REMOTE_ADVERTISE", "address other members send actor messages to (default: derived)", false, stringValue{&c.Routing.Advertise}},
		{"remote-tls-cert", "PRESENCE_REMOTE_TLS_CERT", "PEM certificate for mutual TLS on actor remoting (with _KEY and _CA)", false, stringValue{&c.Routing.TLS.CertFile}},
		{"remote-tls-key", "PRESENCE_REMOTE_TLS_KEY", "PEM private key for remoting TLS", false, stringValue{&c.Routing.TLS.KeyFile}},
		{"remote-tls-ca", "PRESENCE_REMOTE_TLS_CA", "PEM CA that signs every node's remoting certificate", false, stringValue{&c.Routing.TLS.CAFile}},
		{"remote-tls-server-name", "PRESENCE_REMOTE_TLS_SERVER_NAME", "name (DNS SAN) every remoting certificate carries", false, stringValue{&c.Routing.TLS.ServerName}},
		{"seeds", "PRESENCE_SEEDS", "comma-separated host:port or DNS names of members to join", false, listValue{&c.Membership.Seeds}},
		{"rejoin-interval", "PRESENCE_REJOIN_INTERVAL", "how often the seeds are joined again (heals partitions)", false, durationValue{&c.Membership.RejoinInterval}},
		{"drain-wait", "PRESENCE_DRAIN_WAIT", "how long a draining node keeps answering while the others take over", false, durationValue{&c.DrainWait}},
	}, webhookSettings(c)...)
}

// loadConfig builds the configuration from defaults, the environment and
// the command line, in that order of precedence (last wins).
func loadConfig(args []string, getenv func(string) string, stderr io.Writer) (node.Config, error) {
	cfg := node.DefaultConfig()
	fs := flag.NewFlagSet("presenced", flag.ContinueOnError)
	fs.SetOutput(stderr)
	all := settings(&cfg)
	for _, s := range all {
		if v := getenv(s.env); v != "" {
			if err := s.value.Set(v); err != nil {
				return cfg, fmt.Errorf("%s=%q: %w", s.env, v, err)
			}
		}
		fs.Var(s.value, s.flag, s.usage+" (env "+s.env+")")
	}
	fs.Usage = func() {
		fmt.Fprintln(stderr, "presenced: a presence node. Every flag also reads its PRESENCE_* variable.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if err := checkWebhook(&cfg); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// printConfig writes the effective configuration, secrets masked.
func printConfig(w io.Writer, cfg *node.Config) {
	fmt.Fprintln(w, "presenced configuration:")
	for _, s := range settings(cfg) {
		v := s.value.String()
		if s.secret && v != "" && v != "bolt" && v != "memory" {
			v = mask(v)
		}
		if v == "" {
			v = "(none)"
		}
		fmt.Fprintf(w, "  %-26s %s\n", s.env, v)
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
