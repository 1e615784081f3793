package node

import (
	"errors"
	"log/slog"

	"github.com/presence-cluster/presence/cluster"
)

// ErrInsecureCluster: gossip or remoting listens beyond loopback while
// nothing proves membership on the remoting port (no mutual TLS, no
// cluster key), so anyone who reaches it could read and change any user.
// Config.InsecureCluster overrides it.
var ErrInsecureCluster = errors.New("cluster ports listen beyond loopback with no proof of membership: set the cluster key (gossip key) or remoting mutual TLS, or allow an insecure cluster explicitly")

// exposed reports whether a clustered node opens gossip or remoting to the
// network.
func (c Config) exposed() bool {
	return !c.Standalone && (!cluster.IsLoopback(c.Membership.BindAddr) || !cluster.IsLoopback(c.Routing.BindAddr))
}

// checkSecurity refuses an exposed cluster without authenticated remoting,
// unless InsecureCluster says so.
func (c Config) checkSecurity() error {
	if c.Standalone {
		return nil
	}
	if c.Membership.SecretKey != "" {
		if _, err := cluster.DecodeKey(c.Membership.SecretKey); err != nil {
			return err
		}
	}
	secured := c.Membership.SecretKey != "" || c.Routing.Secured()
	if c.exposed() && !secured && !c.InsecureCluster {
		return ErrInsecureCluster
	}
	return nil
}

// clusterKey is the decoded gossip key that also authenticates remoting
// (nil when none; checkSecurity already refused a bad one).
func (c Config) clusterKey() []byte {
	if c.Membership.SecretKey == "" {
		return nil
	}
	k, _ := cluster.DecodeKey(c.Membership.SecretKey)
	return k
}

// warnInsecure logs, at every start, that an exposed cluster runs without
// authenticated remoting because the operator allowed it.
func (n *Node) warnInsecure() {
	if n.cfg.exposed() && n.cfg.Membership.SecretKey == "" && !n.cfg.Routing.Secured() {
		n.log.Warn("INSECURE CLUSTER: gossip/remoting listen beyond loopback without the cluster key or mutual TLS; anyone who reaches the remoting port can read and change every user's presence",
			slog.String("gossip", n.cfg.Membership.BindAddr), slog.String("remote", n.cfg.Routing.BindAddr))
	}
}

// remoteRefused counts and logs a remoting call refused for want of a
// valid cluster-key credential.
func (n *Node) remoteRefused(peer string) {
	n.metrics.remoteRefused.Inc()
	n.log.Warn("remoting call refused: no valid cluster-key credential (not a member, another key, or a clock off by more than 2 minutes)",
		slog.String("peer", peer))
}
