package client_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/presence-cluster/presence/client"
	"github.com/presence-cluster/presence/wire"
)

// exampleNode starts a throwaway node for an example; a real backend points
// BaseURL at its cluster instead.
func exampleNode() *testNode {
	n, err := startNodeE("example")
	if err != nil {
		log.Fatal(err)
	}
	return n
}

// exampleClient is a client of user id on node n.
func exampleClient(n *testNode, id int64, name string, admin bool) *client.Client {
	tok, err := mintE(id, name, admin)
	if err != nil {
		log.Fatal(err)
	}
	cfg := client.DefaultConfig()
	cfg.BaseURL = n.URL // e.g. "http://presence.internal:8000"
	cfg.Token = tok     // or cfg.TokenSource to fetch a fresh one per call
	c, err := client.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	return c
}

// A user's first call creates their record; heartbeats keep them online.
func Example() {
	n := exampleNode()
	defer n.stop()
	ctx := context.Background()

	alice := exampleClient(n, 123, "alice", false)
	if err := alice.Heartbeat(ctx); err != nil {
		log.Fatal(err)
	}
	st, err := alice.GetMyStatus(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("user", st.UserID, "online:", st.IsOnline, "busy:", st.IsBusy)
	// Output: user 123 online: true busy: false
}

func ExampleClient_UpdateMyStatus() {
	n := exampleNode()
	defer n.stop()
	ctx := context.Background()
	alice := exampleClient(n, 123, "alice", false)

	// In a call until 11:00 UTC (busy_until alone implies busy).
	until := time.Date(2030, 1, 15, 11, 0, 0, 0, time.UTC)
	st, err := alice.UpdateMyStatus(ctx, wire.StatusUpdate{BusyUntil: &until})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("busy:", st.IsBusy, "until:", st.BusyUntil.Format(time.RFC3339))

	// "busy_until": null keeps the busy flag and drops the expiry.
	st, err = alice.UpdateMyStatus(ctx, wire.StatusUpdate{ClearBusyUntil: true})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("busy:", st.IsBusy, "until:", st.BusyUntil)

	// Nothing to change is the caller's mistake.
	_, err = alice.UpdateMyStatus(ctx, wire.StatusUpdate{})
	fmt.Println(client.IsBadRequest(err), err)
	// Output:
	// busy: true until: 2030-01-15T11:00:00Z
	// busy: true until: <nil>
	// true presence: PUT /users/me/status: 400 Bad Request: No status fields to update
}

func ExampleIsNotFound() {
	n := exampleNode()
	defer n.stop()
	bob := exampleClient(n, 456, "bob", false)

	_, err := bob.Presence(context.Background(), 999)
	if client.IsNotFound(err) {
		fmt.Println("user 999 never showed up")
	}
	// Output: user 999 never showed up
}

func ExampleClient_PresenceBatch() {
	n := exampleNode()
	defer n.stop()
	ctx := context.Background()
	for id, name := range map[int64]string{123: "alice", 456: "bob"} {
		if err := exampleClient(n, id, name, false).Heartbeat(ctx); err != nil {
			log.Fatal(err)
		}
	}
	carol := exampleClient(n, 789, "carol", false)

	// Unknown users (999) are left out.
	ps, err := carol.PresenceBatch(ctx, []int64{123, 456, 999})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(ps), "known")
	// Output: 2 known
}

// A subscriber receives the current presence of each subscribed user, then
// every change; it reconnects by itself.
func ExampleClient_NewSubscriber() {
	n := exampleNode()
	defer n.stop()
	alice := exampleClient(n, 123, "alice", false)
	bob := exampleClient(n, 456, "bob", false)

	sub := alice.NewSubscriber()
	defer sub.Close()
	if err := sub.Subscribe(456); err != nil {
		log.Fatal(err)
	}
	if err := bob.Heartbeat(context.Background()); err != nil {
		log.Fatal(err)
	}
	for u := range sub.Updates() {
		if u.UserID != 456 {
			continue // the connection's own user (alice) comes too
		}
		fmt.Println(u.Username, "online:", u.IsOnline)
		break
	}
	// Output: bob online: true
}

// Cluster is an admin call: the members one node sees.
func ExampleClient_Cluster() {
	n := exampleNode()
	defer n.stop()
	admin := exampleClient(n, 1, "ops", true)

	cs, err := admin.Cluster(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("standalone:", cs.Standalone, "members:", len(cs.Members), "node:", cs.Members[0].Name)
	// Output: standalone: true members: 1 node: example
}

// The subscriber's reconnect delays, here at the top of each jitter range:
// doubling from MinBackoff, capped at MaxBackoff. A tool that models many
// clients without a Subscriber each reconnects them with the same rule.
func ExampleSubscriberConfig_Backoff() {
	cfg := client.DefaultConfig().Subscriber
	top := func(n time.Duration) time.Duration { return n - 1 }
	for _, attempt := range []int{0, 1, 2, 10} {
		fmt.Println(attempt, cfg.Backoff(attempt, top).Round(time.Millisecond))
	}
	// Output:
	// 0 500ms
	// 1 1s
	// 2 2s
	// 10 30s
}
