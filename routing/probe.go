package routing

import (
	"context"
	"time"

	"github.com/presence-cluster/presence/messages"
)

// probeTimeout bounds a liveness probe: a member that cannot answer an
// empty batch read from memory within it is treated as not answering.
const probeTimeout = 350 * time.Millisecond

// answersProbe reports whether the member at addr is alive and answering,
// asked when a request to one of its users ran out of its attempt. Only
// the user's actor may be slow then, say because the member's store hangs
// (a database outage): that is not a reason to refuse every user of the
// member for suspectFor. The probe is an empty batch read, which every
// version's activator answers at once without touching its store or a
// user actor. Concurrent probes of one member share one request.
//
// A member that left the view is not probed (it is not answering): a
// message to it would open a connection to a host that may have vanished,
// which MemberGone has just dropped.
func (r *Router) answersProbe(addr string) bool {
	if !r.members.View().HasRemote(addr) {
		return false
	}
	v, _, _ := r.probes.Do(addr, func() (any, error) {
		ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
		defer cancel()
		reply, err := r.request(ctx, r.activatorAt(addr), probeEnvelope)
		return err == nil && reply.GetPresenceBatchReply() != nil, nil
	})
	return v.(bool)
}

// probeEnvelope is the probe's request; it is only ever read.
var probeEnvelope = &messages.Envelope{Body: &messages.Envelope_GetPresenceBatch{GetPresenceBatch: &messages.GetPresenceBatch{}}}
