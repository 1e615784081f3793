package client

import (
	"context"
	"net/http"
	"strconv"

	"github.com/presence-cluster/presence/wire"
)

// Visibility is GET /users/me/visibility: who may see the caller's
// presence and last_seen (everyone, everyone, no ids until changed). The
// first call creates the caller's record, as GetMyStatus does.
func (c *Client) Visibility(ctx context.Context) (wire.Visibility, error) {
	return call[wire.Visibility](ctx, c, http.MethodGet, "/users/me/visibility", nil)
}

// SetVisibility is PUT /users/me/visibility with the fields of u that are
// set (the others keep their value), and returns the whole new setting.
// An update with no field set gets a 400, an unknown mode or a bad
// allowlist a 422 naming the field. Viewers the setting refuses see the
// caller as an offline user looks (or without last_seen); the caller and
// admins always see the true record.
func (c *Client) SetVisibility(ctx context.Context, u wire.VisibilityUpdate) (wire.Visibility, error) {
	return call[wire.Visibility](ctx, c, http.MethodPut, "/users/me/visibility", u)
}

// AdminSetVisibility is PUT /admin/users/{id}/visibility (admin token): it
// sets user id's visibility on their behalf, as SetVisibility does for the
// caller. A user without a record is a 404 (see IsNotFound).
func (c *Client) AdminSetVisibility(ctx context.Context, id int64, u wire.VisibilityUpdate) (wire.Visibility, error) {
	return call[wire.Visibility](ctx, c, http.MethodPut, "/admin/users/"+strconv.FormatInt(id, 10)+"/visibility", u)
}
