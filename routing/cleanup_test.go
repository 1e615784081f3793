package routing

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/presence-cluster/presence/cluster"
)

// TestCleanupDryRunNeedsEveryMember: a dry run while a member advertises a
// protocol older than CleanupPreview is refused at once as unavailable
// (that member would ignore the request); with every member current, the
// dry run is asked of every member, and the silent one fails it.
func TestCleanupDryRunNeedsEveryMember(t *testing.T) {
	const silentAddr = "192.0.2.1:8090" // no remote here: dead letters
	for _, tc := range []struct {
		name    string
		proto   int
		refused bool
	}{
		{"older member", cluster.ProtoV3 - 1, true},
		{"current member, silent", cluster.ProtoVersion, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var view *cluster.View
			r, _ := newTestRouter(t, nil, "a", func() *cluster.View { return view })
			view = cluster.NewView([]cluster.Member{
				{Name: "a", RemoteAddr: r.local.Address, State: "alive", Proto: cluster.ProtoVersion},
				{Name: "b", NodeName: "B", RemoteAddr: silentAddr, State: "alive", Proto: tc.proto},
			}, 1)
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			_, err := r.Cleanup(ctx, true)
			if err == nil {
				t.Fatal("dry run with a member that cannot answer succeeded")
			}
			refused := errors.Is(err, ErrUnavailable) && strings.Contains(err.Error(), "older version")
			if refused != tc.refused {
				t.Fatalf("dry run refused for the member's version: %v (err %v), want %v", refused, err, tc.refused)
			}
		})
	}
}
