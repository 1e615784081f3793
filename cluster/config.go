package cluster

import (
	"cmp"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"net"
	"time"

	"github.com/hashicorp/memberlist"
)

// Defaults of Config.
const (
	DefaultGossipAddr     = ":7946"
	DefaultRejoinInterval = 15 * time.Second
	// Failure detection (see Config.Detection): a crashed member of a
	// cluster of up to 10 nodes is declared dead 3.3 to 5.3 s after it
	// stopped answering (measured; at most 4.8 s + dissemination by
	// DetectionTime), 50 nodes at most 6.5 s.
	DefaultProbeInterval           = 800 * time.Millisecond
	DefaultProbeTimeout            = 400 * time.Millisecond
	DefaultSuspicionMult           = 3
	DefaultSuspicionMaxTimeoutMult = 1
	DefaultGossipInterval          = 200 * time.Millisecond
)

// ErrSecretKey is a Config.SecretKey that is not the base64 of an AES key.
var ErrSecretKey = errors.New("gossip key must be the base64 of 16, 24 or 32 bytes (AES-128/192/256)")

// Config configures gossip membership.
type Config struct {
	// BindAddr is the memberlist bind address (default ":7946").
	BindAddr string
	// Advertise is the address other members reach this one at (default:
	// derived from the bind address by memberlist).
	Advertise string
	// SecretKey is a base64 AES key (16, 24 or 32 bytes) encrypting gossip;
	// empty: gossip in the clear.
	SecretKey string
	// Seeds are host:port addresses or DNS names (every address they
	// resolve to is tried) of members to join; none makes a one-node
	// cluster that others may join.
	Seeds []string
	// RejoinInterval is how often the seeds are joined again, which heals
	// a partition after both sides declared each other dead (default 15s).
	RejoinInterval time.Duration
	// Detection tunes memberlist's failure detection.
	Detection Detection
	// Tune, when set, adjusts the memberlist configuration before start:
	// tests use it for faster failure detection and fault injection.
	Tune func(*memberlist.Config)
}

// Detection is memberlist's failure detection. A member that stops
// answering is probed (every ProbeInterval one member is probed directly,
// then through others if it does not ack within ProbeTimeout), then
// suspected, and declared dead when the suspicion timeout runs out:
//
//	timeout = SuspicionMult × max(1, log10(members)) × ProbeInterval
//
// memberlist starts that timeout at SuspicionMaxTimeoutMult times it and
// shortens it as other members confirm the suspicion; in a small cluster
// few can confirm, so a crash took up to 14 s to detect with 3 nodes.
// SuspicionMaxTimeoutMult 1 makes the timeout fixed whatever the
// confirmations: detection ≈ up to two ProbeIntervals until the member is
// probed (each member probes the others in turn) + one for the direct and
// indirect probes + timeout. Shorter settings
// detect sooner and declare a member that pauses longer (GC, CPU
// starvation, a congested link) dead more often; a member declared dead
// by mistake refutes it and is a member again at once, but its users move
// away and back.
type Detection struct {
	// ProbeInterval is the time between two probes this member makes
	// (default 800ms).
	ProbeInterval time.Duration
	// ProbeTimeout is how long a direct probe waits for its ack
	// (default 400ms); keep it well above the network's round trip.
	ProbeTimeout time.Duration
	// SuspicionMult scales the suspicion timeout (default 3).
	SuspicionMult int
	// SuspicionMaxTimeoutMult is the suspicion timeout's upper bound as a
	// multiple of it, while confirmations are awaited (default 1: fixed).
	SuspicionMaxTimeoutMult int
	// GossipInterval is how often gossip (a death, a join) is passed on
	// (default 200ms).
	GossipInterval time.Duration
}

// DefaultDetection returns the defaults of Detection.
func DefaultDetection() Detection {
	return Detection{
		ProbeInterval:           DefaultProbeInterval,
		ProbeTimeout:            DefaultProbeTimeout,
		SuspicionMult:           DefaultSuspicionMult,
		SuspicionMaxTimeoutMult: DefaultSuspicionMaxTimeoutMult,
		GossipInterval:          DefaultGossipInterval,
	}
}

// withDefaults fills the zero fields of d from DefaultDetection.
func (d Detection) withDefaults() Detection {
	def := DefaultDetection()
	setDefault(&d.ProbeInterval, def.ProbeInterval)
	setDefault(&d.ProbeTimeout, def.ProbeTimeout)
	setDefault(&d.SuspicionMult, def.SuspicionMult)
	setDefault(&d.SuspicionMaxTimeoutMult, def.SuspicionMaxTimeoutMult)
	setDefault(&d.GossipInterval, def.GossipInterval)
	return d
}

// DetectionTime estimates how long after a crash the member is declared
// dead in a cluster of members nodes (at most; dissemination adds a few
// gossip intervals).
func (d Detection) DetectionTime(members int) time.Duration {
	d = d.withDefaults()
	scale := max(1, math.Log10(float64(max(members, 1))))
	suspicion := time.Duration(float64(d.SuspicionMult) * scale * float64(d.ProbeInterval))
	return 3*d.ProbeInterval + suspicion
}

func (d Detection) apply(mc *memberlist.Config) {
	d = d.withDefaults()
	mc.ProbeInterval = d.ProbeInterval
	mc.ProbeTimeout = d.ProbeTimeout
	mc.SuspicionMult = d.SuspicionMult
	mc.SuspicionMaxTimeoutMult = d.SuspicionMaxTimeoutMult
	mc.GossipInterval = d.GossipInterval
}

// DefaultConfig returns a Config with every default filled in.
func DefaultConfig() Config {
	return Config{BindAddr: DefaultGossipAddr, RejoinInterval: DefaultRejoinInterval, Detection: DefaultDetection()}
}

// withDefaults fills the zero fields of c from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	c.BindAddr = cmp.Or(c.BindAddr, d.BindAddr)
	setDefault(&c.RejoinInterval, d.RejoinInterval)
	c.Detection = c.Detection.withDefaults()
	return c
}

// setDefault sets *p to v when *p is zero or negative.
func setDefault[T int | time.Duration](p *T, v T) {
	if *p <= 0 {
		*p = v
	}
}

// memberlistConfig turns c into memberlist's configuration for the member
// name.
func (c Config) memberlistConfig(name string) (*memberlist.Config, error) {
	mc := memberlist.DefaultLANConfig()
	mc.Name = name
	c.Detection.apply(mc)
	host, port, err := SplitHostPort(c.BindAddr, 7946)
	if err != nil {
		return nil, fmt.Errorf("gossip bind address %q: %w", c.BindAddr, err)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	mc.BindAddr, mc.BindPort = host, port
	if c.Advertise != "" {
		ahost, aport, err := SplitHostPort(c.Advertise, port)
		if err != nil {
			return nil, fmt.Errorf("gossip advertise address %q: %w", c.Advertise, err)
		}
		mc.AdvertiseAddr, mc.AdvertisePort = ahost, aport
	}
	if c.SecretKey != "" {
		key, err := DecodeKey(c.SecretKey)
		if err != nil {
			return nil, err
		}
		mc.SecretKey = key
	}
	return mc, nil
}

// DecodeKey decodes a gossip key (base64 of 16, 24 or 32 bytes); errors
// wrap ErrSecretKey.
func DecodeKey(s string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: gossip key is not base64: %v", ErrSecretKey, err)
	}
	if n := len(key); n != 16 && n != 24 && n != 32 {
		return nil, fmt.Errorf("%w: gossip key decodes to %d bytes", ErrSecretKey, n)
	}
	return key, nil
}

// IsLoopback reports whether a bind address (host:port, or a host) listens
// on loopback only. An empty or unspecified host (":7946", "0.0.0.0")
// listens on every interface; a host name other than localhost is taken
// as reachable from the network.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
