//go:build !race

package clustere2e

// A process that is not a member cannot get an actor message through a
// node's remoting port: not a write (UpdateStatus), not a read
// (GetPresence). The node is a presenced process listening for remoting
// on every interface; the probe is this test process's own protoactor-go
// remote, dialing it as a member would, with no key, a wrong key, no
// certificate or a certificate of another CA. A probe with the real
// credential (the cluster key, or a certificate of the cluster's CA) is
// the control: the same messages get answers and change the state, so a
// refusal is the credential's doing, not a broken probe. (One remote at a
// time in this process; the build tag keeps the file out of -race runs
// all the same, as every test here that starts a remote.)

import (
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/presence-cluster/presence/actors"
	"github.com/presence-cluster/presence/cluster"
	"github.com/presence-cluster/presence/internal/testkit"
	"github.com/presence-cluster/presence/messages"
	"github.com/presence-cluster/presence/routing"
)

// remoteProbe is a non-node process's view of the remoting port.
type remoteProbe struct {
	name string
	cfg  routing.Config // its credentials
	ok   bool           // whether the node must accept it
}

// probeOutcome sends a write and a read for uid to the activator at addr
// from a fresh remote with cfg's credentials, and reports whether each got
// an answer.
func probeOutcome(t *testing.T, addr string, cfg routing.Config, uid int64) (wrote, read bool) {
	t.Helper()
	system := actor.NewActorSystem()
	cfg.BindAddr = "127.0.0.1:0"
	r, _, err := routing.StartRemote(system, cfg, "127.0.0.1")
	if err != nil {
		t.Fatalf("probe remote: %v", err)
	}
	defer r.Shutdown(false)
	pid := actor.NewPID(addr, actors.ActivatorName)
	writeEnv := &messages.Envelope{Body: &messages.Envelope_UpdateStatus{UpdateStatus: &messages.UpdateStatus{
		UserId: uid, Username: "victim", SetBusy: true, IsBusy: true}}}
	readEnv := &messages.Envelope{Body: &messages.Envelope_GetPresence{GetPresence: &messages.GetPresence{UserId: uid}}}
	answered := func(env *messages.Envelope) bool {
		res, err := system.Root.RequestFuture(pid, env, 3*time.Second).Result()
		reply, isEnv := res.(*messages.Envelope)
		return err == nil && isEnv && reply.GetFailure() == nil
	}
	return answered(writeEnv), answered(readEnv)
}

// checkProbes runs each probe against the node and checks, through REST,
// that only the accepted ones changed the user's state.
func checkProbes(t *testing.T, api *testkit.REST, remoteAddr string, probes []remoteProbe) {
	const uid = 4242
	for _, p := range probes {
		t.Run(p.name, func(t *testing.T) {
			if _, err := api.PutStatus(uid, `{"is_busy": false}`); err != nil {
				t.Fatalf("reset through REST: %v", err)
			}
			wrote, read := probeOutcome(t, remoteAddr, p.cfg, uid)
			pr, err := api.Presence(uid, uid)
			if err != nil {
				t.Fatalf("GET presence: %v", err)
			}
			if p.ok && (!wrote || !read || !pr.IsBusy) {
				t.Fatalf("a member's probe: write answered %v, read answered %v, busy now %v; want all true (the probe is broken)", wrote, read, pr.IsBusy)
			}
			if !p.ok && (wrote || read || pr.IsBusy) {
				t.Fatalf("a non-member got through: write answered %v, read answered %v, busy now %v", wrote, read, pr.IsBusy)
			}
		})
	}
}

// startExposedNode starts presenced with remoting on every interface and
// env's credentials; it returns the REST client and the remoting address
// (on loopback, as the node advertises it).
func startExposedNode(t *testing.T, name string, env map[string]string) (*testkit.REST, string) {
	t.Helper()
	ports := testkit.FreePorts(t, 3)
	remotePort := strconv.Itoa(ports[2])
	base := map[string]string{
		"PRESENCE_NODE_NAME":   name,
		"PRESENCE_HTTP_ADDR":   "127.0.0.1:" + strconv.Itoa(ports[0]),
		"PRESENCE_GOSSIP_ADDR": "127.0.0.1:" + strconv.Itoa(ports[1]),
		"PRESENCE_REMOTE_ADDR": "0.0.0.0:" + remotePort,
		"PRESENCE_STORE":       "memory",
		"PRESENCE_JWT_SECRET":  testkit.ProcSecret,
	}
	for k, v := range env {
		base[k] = v
	}
	p := testkit.StartProc(t, testkit.BuildPresenced(t), name, base, newTokens())
	testkit.Eventually(t, 20*time.Second, name+" ready", func() error {
		if p.HasExited() {
			t.Fatalf("%s exited:\n%s", name, p.Tail(30))
		}
		return p.API.Call(0, "GET", "/readyz", "", nil)
	})
	return p.API, net.JoinHostPort("127.0.0.1", remotePort)
}

func TestRemotingRefusesNonMembersKey(t *testing.T) {
	key := secGossipKey(t, 32)
	api, addr := startExposedNode(t, "keyed", map[string]string{"PRESENCE_GOSSIP_KEY": key})
	raw, _ := cluster.DecodeKey(key)
	other, _ := cluster.DecodeKey(secGossipKey(t, 32))
	checkProbes(t, api, addr, []remoteProbe{
		{"no key", routing.Config{}, false},
		{"wrong key", routing.Config{ClusterKey: other}, false},
		{"the cluster key (control)", routing.Config{ClusterKey: raw}, true},
	})
	// The refusals are visible to the operator.
	if n, err := api.Metric("presence_remote_auth_refused_total"); err != nil || n < 2 {
		t.Errorf("presence_remote_auth_refused_total = %v (%v), want at least the 2 refused probes", n, err)
	}
}

func TestRemotingRefusesNonMembersTLS(t *testing.T) {
	dir := t.TempDir()
	ca := tlsNewCA(t, dir, "cluster")
	cert, key := ca.issue(t, dir, "node")
	api, addr := startExposedNode(t, "tls", map[string]string{
		"PRESENCE_REMOTE_TLS_CERT": cert, "PRESENCE_REMOTE_TLS_KEY": key, "PRESENCE_REMOTE_TLS_CA": ca.file,
	})
	rogue := tlsNewCA(t, dir, "rogue")
	rcert, rkey := rogue.issue(t, dir, "probe-rogue")
	pcert, pkey := ca.issue(t, dir, "probe")
	checkProbes(t, api, addr, []remoteProbe{
		{"no certificate", routing.Config{}, false},
		{"certificate of another CA", routing.Config{TLS: routing.RemoteTLS{CertFile: rcert, KeyFile: rkey, CAFile: rogue.file}}, false},
		{"certificate of the cluster CA (control)", routing.Config{TLS: routing.RemoteTLS{CertFile: pcert, KeyFile: pkey, CAFile: ca.file}}, true},
	})
}
