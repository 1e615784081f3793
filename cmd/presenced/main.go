// Command presenced runs one presence node: the Presence & Status HTTP API
// and its WebSocket push, on per-user actors.
//
// With no configuration it serves on :8000 with an embedded file store and a
// generated JWT secret in ./data; see the README for every setting.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/presence-cluster/presence/cluster"
	"github.com/presence-cluster/presence/node"
)

// version is set at build time (make build: -ldflags "-X main.version=$(git
// describe)").
var version = "dev"

func main() {
	os.Exit(run())
}

func run() int {
	logger := slog.New(newThrottleHandler(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})))
	slog.SetDefault(logger)
	cfg, err := loadConfig(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if errors.Is(err, errVersion) {
		fmt.Println("presenced", version)
		return 0
	}
	if err == nil {
		err = cfg.Validate()
		if err != nil {
			err = startError(err, &cfg)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "presenced:", err)
		return 2
	}
	cfg.Logger = logger
	printConfig(os.Stderr, &cfg)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	n, err := node.Start(ctx, cfg)
	if err != nil {
		logger.Error("start failed", slog.Any("err", startError(err, &cfg)))
		return 1
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
wait:
	for {
		select {
		case <-hup:
			_ = n.ReloadKeys() // logs the outcome
		case <-ctx.Done():
			logger.Info("signal received, shutting down")
			break wait
		case err := <-n.Served():
			logger.Error("http server stopped", slog.Any("err", err))
			break wait
		}
	}
	if err := n.Shutdown(context.Background()); err != nil {
		logger.Error("shutdown", slog.Any("err", err))
		return 1
	}
	return 0
}

// startError says a start failure in the operator's terms: the library
// names no environment variable, so the PRESENCE_* one behind a
// configuration error is named here.
func startError(err error, cfg *node.Config) error {
	switch {
	case errors.Is(err, node.ErrBoltCluster):
		return errors.New("PRESENCE_STORE=bolt keeps state in a file of this node only, so a cluster (PRESENCE_SEEDS set) would lose users that move between nodes: use a postgres:// URL shared by every node, or PRESENCE_STORE=memory for an ephemeral cluster")
	case errors.Is(err, node.ErrUnknownStore):
		return fmt.Errorf("PRESENCE_STORE=%q: %w", cfg.Store, node.ErrUnknownStore)
	case errors.Is(err, cluster.ErrSecretKey):
		return fmt.Errorf("PRESENCE_GOSSIP_KEY: %w", err)
	case errors.Is(err, node.ErrShortSecret):
		return fmt.Errorf("PRESENCE_JWT_SECRET: %w", err)
	case errors.Is(err, node.ErrInsecureCluster):
		return fmt.Errorf("gossip (PRESENCE_GOSSIP_ADDR=%s) or actor remoting (PRESENCE_REMOTE_ADDR=%s) listens beyond loopback, and nothing proves membership on the remoting port: anyone who reaches it could read and change every user's presence. Set PRESENCE_GOSSIP_KEY (the cluster key, e.g. `openssl rand -base64 32`, the same on every node) or mutual TLS (PRESENCE_REMOTE_TLS_CERT, PRESENCE_REMOTE_TLS_KEY, PRESENCE_REMOTE_TLS_CA); or bind both to 127.0.0.1; or, on a network you trust, PRESENCE_INSECURE_CLUSTER=true",
			cfg.Membership.BindAddr, cfg.Routing.BindAddr)
	}
	return err
}
