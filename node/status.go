package node

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/presence-cluster/presence/wire"
)

// clusterStatus answers GET /admin/cluster: every member of this node's
// view, each asked for its statistics in parallel.
func (n *Node) clusterStatus(ctx context.Context) (any, error) {
	view := n.members.View()
	self := n.members.LocalName()
	out := wire.ClusterStatus{Node: self, Standalone: n.cfg.Standalone, Epoch: view.Epoch, Members: make([]wire.MemberStatus, len(view.All))}
	var wg sync.WaitGroup
	for i, m := range view.All {
		_, owner := view.OwnerNamed(m.Name)
		out.Members[i] = wire.MemberStatus{
			Name: m.Name, NodeName: m.NodeName, Status: m.State, Draining: m.Draining, Owner: owner,
			Self: m.Name == self, HTTPAddr: m.HTTPAddr, GossipAddr: m.GossipAddr, RemoteAddr: m.RemoteAddr,
		}
		wg.Add(1)
		go func(ms *wire.MemberStatus) {
			defer wg.Done()
			n.memberStats(ctx, ms)
		}(&out.Members[i])
	}
	wg.Wait()
	sort.Slice(out.Members, func(i, j int) bool { return out.Members[i].Name < out.Members[j].Name })
	return out, nil
}

// memberStats fills in how many actors the member hosts, or why it could
// not tell.
func (n *Node) memberStats(ctx context.Context, ms *wire.MemberStatus) {
	addr := ms.RemoteAddr
	if ms.Self {
		addr = ""
	}
	// A dead member still in the view must not hold the answer.
	mctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	stats, err := n.router.NodeStats(mctx, addr)
	switch {
	case err != nil && n.cfg.Standalone:
		ms.Error = err.Error()
	case err != nil:
		ms.Error = "unreachable: " + err.Error()
	default:
		a := stats.GetActiveActors()
		ms.ActorsHosted = &a
	}
}

// ready reports whether the node can serve, for /readyz: its first join
// attempt has settled (until then it sees itself alone and would serve
// users other members own) and the store's backend answers.
func (n *Node) ready() error {
	select {
	case <-n.members.Settled():
	default:
		return errors.New("joining the cluster")
	}
	return pingStore(n.backend)
}
