package loadgen

import (
	"errors"
	"fmt"
	"net"
	"net/url"
)

// RequireLoopbackURL refuses anything but http://loopback:port: the
// generator is a local benchmarking tool, never a load source against
// another machine.
func RequireLoopbackURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if u.Scheme != "http" {
		return errors.New("want an http:// URL")
	}
	return requireLoopbackHost(u.Hostname())
}

// RequireLoopbackAddr refuses a host:port that is not on loopback (the
// baseline server's listen address).
func RequireLoopbackAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	return requireLoopbackHost(host)
}

func requireLoopbackHost(host string) error {
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%q is not a loopback address (only 127.0.0.0/8, ::1 or localhost)", host)
	}
	return nil
}
