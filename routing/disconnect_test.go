package routing

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/presence-cluster/presence/cluster"
)

// The disconnect reaches this node's hub and the hub of every other alive,
// suspect or draining member; dead or left members, and members without a
// remoting address, are not asked.
func TestHubsOfTheDisconnect(t *testing.T) {
	view := cluster.NewView([]cluster.Member{
		{Name: "self", State: "alive", RemoteAddr: "10.0.0.1:8090", Proto: cluster.ProtoVersion},
		{Name: "b", State: "alive", RemoteAddr: "10.0.0.2:8090", Proto: cluster.ProtoVersion},
		{Name: "c", State: "suspect", RemoteAddr: "10.0.0.3:8090", Proto: cluster.ProtoVersion},
		{Name: "d", State: "alive", Draining: true, RemoteAddr: "10.0.0.4:8090", Proto: cluster.ProtoVersion},
		{Name: "e", State: "dead", RemoteAddr: "10.0.0.5:8090", Proto: cluster.ProtoVersion},
		{Name: "f", State: "left", RemoteAddr: "10.0.0.6:8090", Proto: cluster.ProtoVersion},
		{Name: "g", State: "alive", Proto: cluster.ProtoVersion},
		{Name: "h", State: "alive", RemoteAddr: "10.0.0.8:8090", Proto: cluster.ProtoV3 - 1},
	}, 1)
	r, _ := newTestRouter(t, nil, "self", func() *cluster.View { return view })
	var got []string
	pids, older := r.hubs()
	for _, pid := range pids {
		got = append(got, pid.Address+"/"+pid.Id)
	}
	want := []string{r.system.Address() + "/presence-hub", "10.0.0.2:8090/presence-hub", "10.0.0.3:8090/presence-hub", "10.0.0.4:8090/presence-hub"}
	if !slices.Equal(got, want) {
		t.Fatalf("hubs %v, want %v", got, want)
	}
	// A member of an older release would ignore the message: it is not
	// asked, and the disconnect says so (503) instead of waiting for it.
	var om *OlderMember
	if len(older) != 1 || !errors.As(older[0], &om) || om.Member != "h" || !errors.Is(older[0], ErrUnavailable) {
		t.Fatalf("older members %v, want one *OlderMember for h wrapping ErrUnavailable", older)
	}
}

// With no hub spawned on this node (nothing answers), the disconnect is
// an error wrapping ErrUnavailable, not a count.
func TestDisconnectUserUnanswered(t *testing.T) {
	r, _ := newTestRouter(t, nil, "self", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	n, err := r.DisconnectUser(ctx, 7)
	if n != 0 || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("DisconnectUser with no hub = %d, %v; want an ErrUnavailable", n, err)
	}
}
