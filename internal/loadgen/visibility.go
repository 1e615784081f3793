package loadgen

import (
	"fmt"

	"github.com/valyala/fasthttp"
)

// hideHot sets the hot users' visibility to presence "nobody"
// (Topology.HiddenHot) before any session connects.
func (r *loadRun) hideHot() error {
	op := &restOp{name: "hide_hot"}
	for u := 0; u < r.p.Topology.Hot; u++ {
		if _, ok := r.do(op, u%len(r.clients), fasthttp.MethodPut, "/users/me/visibility", u, []byte(`{"presence":"nobody"}`)); !ok {
			return fmt.Errorf("hide hot user %d: PUT /users/me/visibility failed: %v", r.p.Topology.userID(u), r.errs.Snapshot())
		}
	}
	fmt.Fprintf(r.out, "bench: %d hot users hidden; odd sessions are admins\n", r.p.Topology.Hot)
	return nil
}
