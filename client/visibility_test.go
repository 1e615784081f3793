package client_test

import (
	"reflect"
	"testing"

	"github.com/presence-cluster/presence/client"
	"github.com/presence-cluster/presence/wire"
)

func TestVisibilityMethods(t *testing.T) {
	n := startNode(t, "visibility")
	ctx := ctxT(t)
	alice := newClient(t, n.URL, mint(t, 123, "alice", false))
	bob := newClient(t, n.URL, mint(t, 456, "bob", false))
	admin := newClient(t, n.URL, mint(t, 1, "ops", true))

	v, err := alice.Visibility(ctx)
	want := wire.Visibility{UserID: 123, Presence: "everyone", LastSeen: "everyone", Allow: []int64{}, Version: v.Version}
	if err != nil || !reflect.DeepEqual(v, want) || v.Version == 0 {
		t.Fatalf("Visibility (default) = %+v, %v", v, err)
	}
	if err := alice.Heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	allow := []int64{789, 456, 456}
	v2, err := alice.SetVisibility(ctx, wire.VisibilityUpdate{Presence: wire.VisibilityAllowlist, Allow: &allow})
	if err != nil || v2.Presence != "allowlist" || v2.LastSeen != "everyone" || !reflect.DeepEqual(v2.Allow, []int64{456, 789}) || v2.Version <= v.Version {
		t.Fatalf("SetVisibility = %+v, %v", v2, err)
	}
	if p, err := bob.Presence(ctx, 123); err != nil || !p.IsOnline || p.LastSeen == nil {
		t.Fatalf("bob (allowed) sees %+v, %v", p, err)
	}
	// Fields left out keep their value.
	v3, err := admin.AdminSetVisibility(ctx, 123, wire.VisibilityUpdate{LastSeen: wire.VisibilityNobody})
	if err != nil || v3.Presence != "allowlist" || v3.LastSeen != "nobody" || !reflect.DeepEqual(v3.Allow, []int64{456, 789}) || v3.Version <= v2.Version {
		t.Fatalf("AdminSetVisibility = %+v, %v", v3, err)
	}
	if p, err := bob.Presence(ctx, 123); err != nil || !p.IsOnline || p.LastSeen != nil || p.Version != v3.Version {
		t.Fatalf("bob (allowed, last_seen refused) sees %+v, %v", p, err)
	}
	none := []int64{}
	if _, err := alice.SetVisibility(ctx, wire.VisibilityUpdate{Allow: &none}); err != nil {
		t.Fatal(err)
	}
	if p, err := bob.Presence(ctx, 123); err != nil || p.IsOnline || p.LastSeen != nil {
		t.Fatalf("bob (refused) sees %+v, %v", p, err)
	}
	if got, err := alice.Visibility(ctx); err != nil || got.Presence != "allowlist" || len(got.Allow) != 0 {
		t.Fatalf("Visibility = %+v, %v", got, err)
	}

	errs := []struct {
		name string
		err  error
		code int
		is   func(error) bool
	}{
		{"400 no fields", second(alice.SetVisibility(ctx, wire.VisibilityUpdate{})), 400, client.IsBadRequest},
		{"422 unknown mode", second(alice.SetVisibility(ctx, wire.VisibilityUpdate{Presence: "friends"})), 422, client.IsBadRequest},
		{"403 not admin", second(bob.AdminSetVisibility(ctx, 123, wire.VisibilityUpdate{Presence: "nobody"})), 403, client.IsForbidden},
		{"404 no record", second(admin.AdminSetVisibility(ctx, 999, wire.VisibilityUpdate{Presence: "nobody"})), 404, client.IsNotFound},
	}
	for _, tc := range errs {
		if client.StatusCode(tc.err) != tc.code || !tc.is(tc.err) {
			t.Errorf("%s: err = %v", tc.name, tc.err)
		}
	}
}

func second[T any](_ T, err error) error { return err }
