package cluster

import (
	"fmt"
	"net"
	"strconv"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	sockaddr "github.com/hashicorp/go-sockaddr"
)

// startRemote starts protoactor-go remoting on bind and returns the address
// other members reach this node's actors at. The pinned library panics when
// it cannot listen; that becomes an error here.
func startRemote(system *actor.ActorSystem, bind, advertise, advertiseHost string, tlsCfg RemoteTLS) (r *remote.Remote, addr string, err error) {
	opts := []remote.ConfigOption{}
	if tlsCfg.enabled() {
		topts, err := tlsCfg.options()
		if err != nil {
			return nil, "", err
		}
		opts = append(opts, topts...)
	}
	host, port, err := splitHostPort(bind, 8090)
	if err != nil {
		return nil, "", fmt.Errorf("PRESENCE_REMOTE_ADDR=%q: %w", bind, err)
	}
	if port == 0 {
		// The library needs the port before it listens; take a free one.
		if port, err = freePort(host); err != nil {
			return nil, "", err
		}
	}
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
			r, err = nil, fmt.Errorf("start actor remoting on %s: %v", bind, p)
		}
	}()
	opts = append(opts, remote.WithAdvertisedHost(advertise))
	r = remote.NewRemote(system, remote.Configure(host, port, opts...))
	r.Start()
	return r, advertise, nil
}

func freePort(host string) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("pick a port for actor remoting: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// defaultAdvertiseHost picks the host other members should use when the
// configuration names none: the gossip advertise or bind host when it is
// specific, else a private IP of this machine, else loopback.
func defaultAdvertiseHost(gossipAdvertise, gossipBind string) string {
	for _, a := range []string{gossipAdvertise, gossipBind} {
		if a == "" {
			continue
		}
		h, _, err := net.SplitHostPort(a)
		if err != nil {
			h = a
		}
		if h != "" && !net.ParseIP(h).IsUnspecified() {
			return h
		}
	}
	if ip, err := sockaddr.GetPrivateIP(); err == nil && ip != "" {
		return ip
	}
	return "127.0.0.1"
}
