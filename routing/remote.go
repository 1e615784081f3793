package routing

import (
	"fmt"
	"net"
	"strconv"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/presence-cluster/presence/cluster"
)

// StartRemote starts protoactor-go remoting on cfg.BindAddr and returns
// the address other members reach this node's actors at (cfg.Advertise,
// or advertiseHost with the bound port). It must run before any actor is
// spawned: a PID takes the system's address at spawn time. The pinned
// library panics when it cannot listen; that becomes an error here.
func StartRemote(system *actor.ActorSystem, cfg Config, advertiseHost string) (r *remote.Remote, addr string, err error) {
	cfg = cfg.withDefaults()
	opts, err := securityOptions(cfg)
	if err != nil {
		return nil, "", err
	}
	host, port, err := cluster.SplitHostPort(cfg.BindAddr, 8090)
	if err != nil {
		return nil, "", fmt.Errorf("remoting bind address %q: %w", cfg.BindAddr, err)
	}
	if port == 0 {
		// The library needs the port before it listens; take a free one.
		if port, err = freePort(host); err != nil {
			return nil, "", err
		}
	}
	advertise := cfg.Advertise
	if advertise == "" {
		ahost := host
		if ahost == "" || net.ParseIP(ahost).IsUnspecified() {
			ahost = advertiseHost
		}
		advertise = net.JoinHostPort(ahost, strconv.Itoa(port))
	}
	defer func() {
		if p := recover(); p != nil {
			// Start panics before its gRPC server exists (a port in use):
			// such a Remote cannot even be shut down, so none is returned.
			r, err = nil, fmt.Errorf("start actor remoting on %s: %v", cfg.BindAddr, p)
		}
	}()
	opts = append(opts, remote.WithAdvertisedHost(advertise))
	r = remote.NewRemote(system, remote.Configure(host, port, opts...))
	r.Start()
	return r, advertise, nil
}

// securityOptions returns the remote options for mutual TLS and the
// cluster-key credential. protoactor-go's WithServerOptions and
// WithDialOptions replace rather than add, so both are built together.
func securityOptions(cfg Config) ([]remote.ConfigOption, error) {
	var server []grpc.ServerOption
	dial := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if cfg.TLS.Enabled() {
		so, do, err := cfg.TLS.options()
		if err != nil {
			return nil, err
		}
		server, dial = append(server, so), []grpc.DialOption{do}
	}
	if len(cfg.ClusterKey) > 0 {
		a := newClusterAuth(cfg.ClusterKey)
		a.refused = cfg.OnRefused
		server = append(server, a.serverOptions()...)
		dial = append(dial, a.dialOptions()...)
	}
	// Chained after the membership check: non-members are refused first.
	server = append(server, guardOptions()...)
	return []remote.ConfigOption{remote.WithServerOptions(server...), remote.WithDialOptions(dial...)}, nil
}

func freePort(host string) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("pick a port for actor remoting: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// MemberBack tells the router that the member at addr (re)joined the view:
// requests that failed while it was gone no longer make its users' requests
// fail fast.
func (r *Router) MemberBack(addr string) {
	if addr != "" {
		r.health.answered(addr)
	}
}

// MemberGone tells the router that the member at addr left the view (it
// left, or failure detection declared it dead). Remoting's connection to
// it, if any, is dropped, with what is queued on it, and the next message
// dials afresh. A host that
// vanished without closing its connections (a killed container or VM, a
// partition) leaves them open: without this, what is sent after the address
// answers again would go down the dead connection until the new process
// resets it, and those first requests would be lost.
func (r *Router) MemberGone(addr string) {
	if addr == "" || addr == r.local.Address {
		return
	}
	r.system.EventStream.Publish(&remote.EndpointTerminatedEvent{Address: addr})
}
