package node

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/presence-cluster/presence/actors"
	"github.com/presence-cluster/presence/api"
	"github.com/presence-cluster/presence/cluster"
	"github.com/presence-cluster/presence/routing"
)

// DefaultConfig composes the parts' own defaults, and zero fields of a
// partial Config get the node-level ones.
func TestDefaultConfig(t *testing.T) {
	d := DefaultConfig()
	if d.Actors.OfflineAfter != actors.DefaultOfflineAfter || d.API.BodyLimit != api.DefaultBodyLimit ||
		d.Membership.BindAddr != cluster.DefaultGossipAddr || d.Routing.BindAddr != routing.DefaultRemoteAddr ||
		d.DrainWait != DefaultDrainWait || d.Auth.Leeway != DefaultJWTLeeway || d.Store != DefaultStore {
		t.Fatalf("DefaultConfig() = %+v", d)
	}
	c := Config{Store: "memory"}.withDefaults()
	if c.HTTPAddr != DefaultHTTPAddr || c.ShutdownTimeout != DefaultShutdownTimeout || c.Store != "memory" || c.Logger == nil {
		t.Fatalf("withDefaults() = %+v", c)
	}
}

func TestConfigErrors(t *testing.T) {
	key := "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" // 32 bytes
	for _, tc := range []struct {
		name string
		cfg  Config
		want error
	}{
		{"bolt cluster", Config{Store: "bolt", Membership: cluster.Config{Seeds: []string{"a:7946"}}}, ErrBoltCluster},
		{"bolt standalone", Config{Store: "bolt", Standalone: true, Membership: cluster.Config{Seeds: []string{"a:7946"}}}, nil},
		{"bolt alone", Config{Store: "bolt", Membership: cluster.Config{BindAddr: "127.0.0.1:7946"}, Routing: routing.Config{BindAddr: "127.0.0.1:8090"}}, nil},
		{"postgres cluster with the key", Config{Store: "postgres://h/db", Membership: cluster.Config{Seeds: []string{"a:7946"}, SecretKey: key}}, nil},
		{"exposed cluster, no key, no TLS", Config{Store: "memory", Membership: cluster.Config{Seeds: []string{"a:7946"}}}, ErrInsecureCluster},
		{"exposed remoting only", Config{Store: "memory", Membership: cluster.Config{BindAddr: "127.0.0.1:7946"}, Routing: routing.Config{BindAddr: "10.0.0.5:8090"}}, ErrInsecureCluster},
		{"exposed gossip only", Config{Store: "memory", Membership: cluster.Config{BindAddr: "0.0.0.0:7946"}, Routing: routing.Config{BindAddr: "127.0.0.1:8090"}}, ErrInsecureCluster},
		{"exposed, insecure allowed", Config{Store: "memory", InsecureCluster: true}, nil},
		{"exposed with TLS", Config{Store: "memory", Routing: routing.Config{TLS: routing.RemoteTLS{CertFile: "c", KeyFile: "k", CAFile: "ca"}}}, nil},
		{"loopback cluster, no key", Config{Store: "memory", Membership: cluster.Config{BindAddr: "127.0.0.1:7946"}, Routing: routing.Config{BindAddr: "localhost:8090"}}, nil},
		{"standalone on default addresses", Config{Store: "memory", Standalone: true}, nil},
		{"bad gossip key", Config{Store: "memory", Membership: cluster.Config{SecretKey: "c2hvcnQ="}}, cluster.ErrSecretKey},
		{"short HS256 secret", Config{Store: "memory", Standalone: true, Auth: AuthConfig{Secret: "12345"}}, ErrShortSecret},
		{"31-byte HS256 secret", Config{Store: "memory", Standalone: true, Auth: AuthConfig{Secret: strings.Repeat("x", 31)}}, ErrShortSecret},
		{"32-byte HS256 secret", Config{Store: "memory", Standalone: true, Auth: AuthConfig{Secret: strings.Repeat("x", 32)}}, nil},
	} {
		if err := tc.cfg.Validate(); !errors.Is(err, tc.want) {
			t.Errorf("%s: Validate() = %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := openStore(Config{Store: "cassandra"}); !errors.Is(err, ErrUnknownStore) || !strings.Contains(err.Error(), "cassandra") {
		t.Errorf("openStore(cassandra) = %v, want ErrUnknownStore naming it", err)
	}
}

// A standalone node is the only member of a static view: the cluster
// status shows it alone, owning users, with the JSON names of old.
func TestStandaloneStatus(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := Start(ctx, Config{
		Name: "solo", Standalone: true, Store: "memory", HTTPAddr: "127.0.0.1:0", DataDir: t.TempDir(),
		Auth: AuthConfig{Secret: "test-secret-0123456789abcdef0123"}, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer n.Shutdown(context.Background())
	if !n.Router().Owns(42) || n.remote != nil {
		t.Fatal("a standalone node must own every user and run no remoting")
	}
	st, err := n.clusterStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(st)
	var got map[string]any
	_ = json.Unmarshal(b, &got)
	if got["node"] != "solo" || got["standalone"] != true || got["epoch"] != float64(0) {
		t.Fatalf("status = %s", b)
	}
	m := got["members"].([]any)[0].(map[string]any)
	for k, want := range map[string]any{"name": "solo", "node_name": "solo", "status": "alive", "draining": false,
		"owns_users": true, "self": true, "http_addr": n.HTTPAddr(), "gossip_addr": "", "remote_addr": ""} {
		if m[k] != want {
			t.Errorf("member %q = %v, want %v (%s)", k, m[k], want, b)
		}
	}
	if _, ok := m["actors_hosted"].(float64); !ok {
		t.Errorf("member actors_hosted = %v, want a number", m["actors_hosted"])
	}
}
