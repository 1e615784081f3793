package client

import (
	"context"
	"net/http"
	"strconv"

	"github.com/presence-cluster/presence/wire"
)

// GetMyStatus is GET /users/me/status: the caller's own record. The first
// call creates it (it counts as a sign of life).
func (c *Client) GetMyStatus(ctx context.Context) (wire.Status, error) {
	return call[wire.Status](ctx, c, http.MethodGet, "/users/me/status", nil)
}

// UpdateMyStatus is PUT /users/me/status with the fields of u that are set,
// and returns the record after the change. An update with no field set
// gets a 400.
func (c *Client) UpdateMyStatus(ctx context.Context, u wire.StatusUpdate) (wire.Status, error) {
	return call[wire.Status](ctx, c, http.MethodPut, "/users/me/status", u)
}

// Heartbeat is POST /users/me/heartbeat: the caller is active. Without an
// open WebSocket a user goes offline after a few minutes with no
// heartbeat. HeartbeatAdvice also returns the server's advice;
// HeartbeatLoop follows it.
func (c *Client) Heartbeat(ctx context.Context) error {
	_, err := c.HeartbeatAdvice(ctx)
	return err
}

// HeartbeatAdvice is Heartbeat returning the answer: the interval to send
// the next heartbeat after (HeartbeatIntervalSeconds, longer while the
// node is overloaded) and how long the user stays online without one
// (OfflineAfterSeconds).
func (c *Client) HeartbeatAdvice(ctx context.Context) (wire.Heartbeat, error) {
	return call[wire.Heartbeat](ctx, c, http.MethodPost, "/users/me/heartbeat", nil)
}

// Presence is GET /users/{id}/presence. A user who never showed up is a
// 404 (see IsNotFound).
func (c *Client) Presence(ctx context.Context, id int64) (wire.Presence, error) {
	return call[wire.Presence](ctx, c, http.MethodGet, "/users/"+strconv.FormatInt(id, 10)+"/presence", nil)
}

// PresenceBatch is GET /users/presence?user_ids=...: the presence of each
// of ids that has a record (unknown ids are left out). The server takes at
// most 50 distinct ids per call.
func (c *Client) PresenceBatch(ctx context.Context, ids []int64) ([]wire.Presence, error) {
	if len(ids) == 0 {
		return nil, errNoIDs
	}
	q := make([]byte, 0, len("/users/presence?user_ids=")+len(ids)*8)
	q = append(q, "/users/presence?user_ids="...)
	for i, id := range ids {
		if i > 0 {
			q = append(q, ',')
		}
		q = strconv.AppendInt(q, id, 10)
	}
	return call[[]wire.Presence](ctx, c, http.MethodGet, string(q), nil)
}

// Cleanup is POST /admin/cleanup-presence (admin token): every user's
// timers are checked now. The answer lists the users changed.
func (c *Client) Cleanup(ctx context.Context) (wire.Cleanup, error) {
	return call[wire.Cleanup](ctx, c, http.MethodPost, "/admin/cleanup-presence", nil)
}

// CleanupDryRun is POST /admin/cleanup-presence?dry_run=true (admin
// token): what Cleanup would do now, changing nothing.
func (c *Client) CleanupDryRun(ctx context.Context) (wire.Cleanup, error) {
	return call[wire.Cleanup](ctx, c, http.MethodPost, "/admin/cleanup-presence?dry_run=true", nil)
}

// AdminDisconnect is POST /admin/users/{id}/disconnect (admin token):
// every WebSocket session of user id, on every node, is closed with code
// 4003. It returns how many sessions were closed (0 when the user had
// none). To ban a user, also stop issuing tokens to them: a client told
// to reconnect would otherwise come back with a token it still holds.
func (c *Client) AdminDisconnect(ctx context.Context, id int64) (int64, error) {
	r, err := call[wire.Disconnect](ctx, c, http.MethodPost, "/admin/users/"+strconv.FormatInt(id, 10)+"/disconnect", nil)
	return r.SessionsClosed, err
}

// InspectUser is GET /admin/users/{id} (admin token): user id's true
// record, whatever their visibility, with where it lives and the setting.
// A user without a record is a 404 (see IsNotFound).
func (c *Client) InspectUser(ctx context.Context, id int64) (wire.UserInspection, error) {
	return call[wire.UserInspection](ctx, c, http.MethodGet, "/admin/users/"+strconv.FormatInt(id, 10), nil)
}

// Cluster is GET /admin/cluster (admin token): the membership as the node
// asked sees it.
func (c *Client) Cluster(ctx context.Context) (wire.ClusterStatus, error) {
	return call[wire.ClusterStatus](ctx, c, http.MethodGet, "/admin/cluster", nil)
}

// Healthz is GET /healthz: nil while the node's process serves.
func (c *Client) Healthz(ctx context.Context) error { return c.Probe(ctx, "/healthz") }

// Readyz is GET /readyz: nil while the node takes traffic (not draining,
// store reachable); an *Error with 503 otherwise.
func (c *Client) Readyz(ctx context.Context) error { return c.Probe(ctx, "/readyz") }

// Probe GETs path and reports whether it answered 2xx, reading the body
// only for the error: health checks of any path.
func (c *Client) Probe(ctx context.Context, path string) error {
	return c.do(ctx, http.MethodGet, path, nil, nil)
}
