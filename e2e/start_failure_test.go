package e2e

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/presence-cluster/presence/cluster"
	"github.com/presence-cluster/presence/node"
	"github.com/presence-cluster/presence/routing"
)

// TestRegression_StartFailurePanics: any start failure (data dir in use,
// HTTP address taken, remoting port taken, unknown store) makes Start return
// an error and release what it had opened. It used to panic in the deferred
// cleanup (it read a nil *Node), so presenced died with a goroutine dump and
// exit status 2 instead of logging "start failed" and exiting 1.
func TestRegression_StartFailurePanics(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	lockedDir := t.TempDir()
	startNode(t, node.Config{Store: "bolt", DataDir: lockedDir})

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()

	for _, tc := range []struct {
		name string
		cfg  node.Config
		want string // in the error
	}{
		{"data dir in use", node.Config{Store: "bolt", DataDir: lockedDir, HTTPAddr: "127.0.0.1:0"}, filepath.Base(node.BoltFileName)},
		{"HTTP address taken", node.Config{Store: "memory", DataDir: t.TempDir(), HTTPAddr: busy.Addr().String()}, busy.Addr().String()},
		{"unknown store", node.Config{Store: "cassandra", DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0"}, "cassandra"},
		// Not standalone: the remoting port is taken (the library panics
		// on it; the node must return that as its error).
		{"remoting address taken", node.Config{Store: "memory", DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", Membership: cluster.Config{BindAddr: "127.0.0.1:0"}, Routing: routing.Config{BindAddr: busy.Addr().String()}}, "remoting"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Auth.Secret, tc.cfg.Logger = testSecret, quiet
			tc.cfg.Standalone = tc.cfg.Routing.BindAddr == ""
			n, err, panicked := startRecovering(tc.cfg)
			if panicked != nil {
				t.Fatalf("node.Start panicked instead of returning an error: %v", panicked)
			}
			if err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_ = n.Shutdown(ctx)
				t.Fatal("node.Start succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func startRecovering(cfg node.Config) (n *node.Node, err error, panicked any) {
	defer func() { panicked = recover() }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err = node.Start(ctx, cfg)
	return n, err, nil
}
