package cluster

import (
	"net"

	sockaddr "github.com/hashicorp/go-sockaddr"
)

// AdvertiseHost picks the host other members should reach this node at
// when the configuration names none: the gossip advertise or bind host
// when it is specific, else a private IP of this machine, else loopback.
func AdvertiseHost(gossipAdvertise, gossipBind string) string {
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
