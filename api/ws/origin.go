package ws

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Origins is a parsed list of allowed browser origins: "*" or exact
// scheme://host[:port] values, compared case-insensitively.
type Origins struct {
	any bool
	set map[string]struct{}
}

// ParseOrigins checks and parses a list of origins; an empty list gives
// nil (no restriction and no CORS). Each entry is "*" or an origin as
// browsers send it: http or https, a host, an optional port, and nothing
// else (no path, no trailing slash).
func ParseOrigins(list []string) (*Origins, error) {
	if len(list) == 0 {
		return nil, nil
	}
	o := &Origins{set: map[string]struct{}{}}
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "*" {
			o.any = true
			continue
		}
		if err := checkOrigin(s); err != nil {
			return nil, fmt.Errorf("origin %q: %w", s, err)
		}
		o.set[strings.ToLower(s)] = struct{}{}
	}
	return o, nil
}

func checkOrigin(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return err
	case u.Scheme != "http" && u.Scheme != "https":
		return errors.New("want http:// or https://")
	case u.Host == "" || u.User != nil:
		return errors.New("want scheme://host[:port]")
	case u.Path != "" || u.RawQuery != "" || u.Fragment != "":
		return errors.New("an origin has no path (no trailing slash either)")
	}
	return nil
}

// Any reports whether every origin is allowed ("*").
func (o *Origins) Any() bool { return o != nil && o.any }

// Allows reports whether a request's Origin header value is allowed. A
// request without Origin (not from a browser page) is allowed: the
// restriction is on what pages of other sites may do.
func (o *Origins) Allows(origin string) bool {
	if o == nil || o.any || origin == "" {
		return true
	}
	_, ok := o.set[origin]
	if !ok && strings.ToLower(origin) != origin {
		_, ok = o.set[strings.ToLower(origin)]
	}
	return ok
}

// Listed reports whether origin is allowed by name or by "*" (a request
// without Origin is not listed).
func (o *Origins) Listed(origin string) bool { return o != nil && origin != "" && o.Allows(origin) }

// AllowsHandshake is Allows for a WebSocket handshake to host (the
// request's Host header): a page the node itself served (the dashboard at
// /admin/) is same-origin and always allowed, listed or not.
func (o *Origins) AllowsHandshake(origin, host string) bool {
	if o.Allows(origin) {
		return true
	}
	rest, ok := strings.CutPrefix(strings.ToLower(origin), "http://")
	if !ok {
		rest, ok = strings.CutPrefix(strings.ToLower(origin), "https://")
	}
	return ok && host != "" && rest == strings.ToLower(host)
}
