package cluster

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/memberlist"
)

// Defaults of Config.
const (
	DefaultGossipAddr     = ":7946"
	DefaultRejoinInterval = 15 * time.Second
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
	// Tune, when set, adjusts the memberlist configuration before start:
	// tests use it for faster failure detection and fault injection.
	Tune func(*memberlist.Config)
}

// DefaultConfig returns a Config with every default filled in.
func DefaultConfig() Config {
	return Config{BindAddr: DefaultGossipAddr, RejoinInterval: DefaultRejoinInterval}
}

// withDefaults fills the zero fields of c from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.BindAddr == "" {
		c.BindAddr = d.BindAddr
	}
	if c.RejoinInterval <= 0 {
		c.RejoinInterval = d.RejoinInterval
	}
	return c
}

// memberlistConfig turns c into memberlist's configuration for the member
// name.
func (c Config) memberlistConfig(name string) (*memberlist.Config, error) {
	mc := memberlist.DefaultLANConfig()
	mc.Name = name
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
