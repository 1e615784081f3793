package e2e

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/presence-cluster/presence/internal/testkit"
	"github.com/presence-cluster/presence/node"
	"github.com/presence-cluster/presence/wire"
)

// visParties are the visibility scenarios' users on node n.
func visParties(n *testNode, base int64) testkit.VisibilityParties {
	tok := testkit.NewTokens([]byte(testSecret))
	api := testkit.NewREST(n.HTTPAddr(), tok)
	return testkit.VisibilityParties{
		Tokens: tok, UserAPI: api, ViewerAPI: api, ViewerAddr: n.HTTPAddr(),
		User: base + 1, Allowed: base + 2, Refused: base + 3, Offline: base + 4,
	}
}

// TestVisibilityMatrix: every mode of each field, as an allowed viewer, a
// refused viewer, the user and an admin see it from every read path and in
// pushes (testkit.RunVisibilityMatrix).
func TestVisibilityMatrix(t *testing.T) {
	n := startNode(t, node.Config{})
	testkit.RunVisibilityMatrix(t, visParties(n, 100))
}

// TestVisibilityHiddenLooksOffline: a refused viewer sees a hidden user
// exactly as an offline user, in reads and in (the absence of) pushes.
func TestVisibilityHiddenLooksOffline(t *testing.T) {
	n := startNode(t, node.Config{})
	testkit.RunHiddenLooksOffline(t, visParties(n, 200))
}

// TestVisibilityDefaultsAndCreation: the default setting, the first call
// creating the record as other /users/me calls do, and fields left out
// keeping their value.
func TestVisibilityDefaultsAndCreation(t *testing.T) {
	n := startNode(t, node.Config{})
	p := visParties(n, 300)
	api := p.UserAPI
	if _, err := api.Presence(p.Refused, p.User); !testkit.IsHTTP(err, 404) {
		t.Fatalf("presence before any call: %v, want 404", err)
	}
	v, err := api.Visibility(p.User)
	want := testkit.Visibility{UserID: p.User, Presence: "everyone", LastSeen: "everyone", Allow: []int64{}, Version: v.Version}
	if err != nil || !reflect.DeepEqual(v, want) {
		t.Fatalf("GET default = %+v, %v; want %+v", v, err, want)
	}
	if pr, err := api.Presence(p.Refused, p.User); err != nil || pr.Version != v.Version || pr.IsOnline {
		t.Fatalf("the first GET did not create the record: %+v, %v", pr, err)
	}
	// A first PUT creates the record too.
	if v, err := api.PutVisibility(p.Offline, `{"last_seen":"nobody"}`); err != nil || v.LastSeen != "nobody" || v.Presence != "everyone" {
		t.Fatalf("first PUT = %+v, %v", v, err)
	}
	if _, err := api.Presence(p.Refused, p.Offline); err != nil {
		t.Fatalf("the first PUT did not create the record: %v", err)
	}
	v1, _ := api.PutVisibility(p.User, `{"presence":"allowlist","allow":[9,3,9,1]}`)
	v2, _ := api.PutVisibility(p.User, `{"last_seen":"nobody"}`)
	v3, _ := api.PutVisibility(p.User, `{"last_seen":"nobody"}`) // no change
	if v2.Presence != "allowlist" || !reflect.DeepEqual(v2.Allow, []int64{1, 3, 9}) || v2.LastSeen != "nobody" || v2.Version <= v1.Version {
		t.Fatalf("fields left out did not keep their value: %+v then %+v", v1, v2)
	}
	if v3.Version != v2.Version {
		t.Fatalf("a PUT that changes nothing raised the version: %d -> %d", v2.Version, v3.Version)
	}
	if got, err := api.Visibility(p.User); err != nil || !reflect.DeepEqual(got, v3) {
		t.Fatalf("GET after PUTs = %+v, %v; want %+v", got, err, v3)
	}
	// An admin sets it on the user's behalf, and sees the true record.
	api.Must(t).Heartbeat(p.User)
	if v, err := api.AdminPutVisibility(p.User, `{"presence":"nobody"}`); err != nil || v.Presence != "nobody" || v.LastSeen != "nobody" {
		t.Fatalf("admin PUT = %+v, %v", v, err)
	}
	if pr, _ := api.Presence(testkit.AdminID, p.User); !pr.IsOnline || pr.LastSeen == nil {
		t.Fatalf("the admin does not see the true record: %+v", pr)
	}
	in, err := api.InspectUser(p.User)
	if err != nil || !in.IsOnline {
		t.Fatalf("admin inspection does not show the true record: %+v, %v", in, err)
	}
	if want := (wire.VisibilitySetting{Presence: "nobody", LastSeen: "nobody", Allow: []int64{1, 3, 9}}); !reflect.DeepEqual(in.Visibility, want) {
		t.Fatalf("admin inspection shows visibility %+v, want %+v", in.Visibility, want)
	}
	if pr, _ := api.Presence(p.Refused, p.User); pr.IsOnline || pr.LastSeen != nil {
		t.Fatalf("a refused viewer sees %+v", pr)
	}
}

// TestVisibilityBadInput: every bad body is refused with the documented
// status and a detail naming the field, and changes nothing.
func TestVisibilityBadInput(t *testing.T) {
	n := startNode(t, node.Config{})
	p := visParties(n, 400)
	api := p.UserAPI
	before, err := api.PutVisibility(p.User, `{"presence":"allowlist","last_seen":"nobody","allow":[7]}`)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, 1001)
	for i := range ids {
		ids[i] = fmt.Sprint(i + 1)
	}
	cases := []struct {
		name, body string
		code       int
		detail     string // a substring of the detail
	}{
		{"unknown presence mode", `{"presence":"friends"}`, 422, "presence"},
		{"unknown last_seen mode", `{"last_seen":"contacts"}`, 422, "last_seen"},
		{"mode of the wrong case", `{"presence":"Nobody"}`, 422, "presence"},
		{"null mode", `{"presence":null}`, 422, "presence"},
		{"mode as a number", `{"last_seen":1}`, 422, "last_seen"},
		{"1,001 ids", `{"allow":[` + strings.Join(ids, ",") + `]}`, 422, "allow"},
		{"id 0", `{"allow":[0]}`, 422, "allow"},
		{"id -1", `{"allow":[5,-1]}`, 422, "allow"},
		{"fractional id", `{"allow":[1.5]}`, 422, "allow"},
		{"id as a string", `{"allow":["5"]}`, 422, "allow"},
		{"allow not an array", `{"allow":5}`, 422, "allow"},
		{"allow null", `{"allow":null}`, 422, "allow"},
		{"valid mode with a bad list", `{"presence":"nobody","allow":[0]}`, 422, "allow"},
		{"not an object", `["nobody"]`, 422, "JSON object"},
		{"a string", `"nobody"`, 422, "JSON object"},
		{"not JSON", `{"presence":`, 422, "JSON"},
		{"empty object", `{}`, 400, "No visibility fields to update"},
		{"only unknown fields", `{"mode":"nobody"}`, 400, "No visibility fields to update"},
	}
	for _, tc := range cases {
		for _, path := range []string{"/users/me/visibility", fmt.Sprintf("/admin/users/%d/visibility", p.User)} {
			asker := p.User
			if strings.HasPrefix(path, "/admin") {
				asker = testkit.AdminID
			}
			err := api.Call(asker, "PUT", path, tc.body, nil)
			var he *testkit.HTTPError
			if !errors.As(err, &he) || he.Code != tc.code || !strings.Contains(he.Body, tc.detail) || !strings.HasPrefix(he.Body, `{"detail":`) {
				t.Errorf("%s: PUT %s answered %v, want %d naming %q", tc.name, path, err, tc.code, tc.detail)
			}
		}
	}
	if after, err := api.Visibility(p.User); err != nil || !reflect.DeepEqual(after, before) {
		t.Fatalf("after refused PUTs: %+v, %v; want %+v unchanged", after, err, before)
	}
	// Admin route errors.
	for _, tc := range []struct {
		asker int64
		path  string
		code  int
	}{
		{p.User, fmt.Sprintf("/admin/users/%d/visibility", p.User), 403},
		{testkit.AdminID, "/admin/users/abc/visibility", 422},
		{testkit.AdminID, "/admin/users/0/visibility", 422},
		{testkit.AdminID, "/admin/users/999999/visibility", 404},
	} {
		err := api.Call(tc.asker, "PUT", tc.path, `{"presence":"nobody"}`, nil)
		if !testkit.IsHTTP(err, tc.code) {
			t.Errorf("PUT %s as %d: %v, want %d", tc.path, tc.asker, err, tc.code)
		}
	}
	if _, err := api.Presence(p.Refused, 999999); !testkit.IsHTTP(err, 404) {
		t.Errorf("the admin PUT for an unknown user created a record: %v", err)
	}
}

// TestVisibilitySurvivesRestart: the setting is stored with the record
// (bolt) and applied after a restart.
func TestVisibilitySurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	a := startNode(t, node.Config{Store: "bolt", DataDir: dir, Name: "A"})
	visSurvivesRestart(t, a, func() *testNode {
		a.Stop(t)
		return startNode(t, node.Config{Store: "bolt", DataDir: dir, Name: "B"})
	})
}

// TestVisibilitySurvivesRestartPostgres is TestVisibilitySurvivesRestart
// on the PostgreSQL store.
func TestVisibilitySurvivesRestartPostgres(t *testing.T) {
	conn, _ := testkit.PgSchema(t, testkit.PostgresURL(t))
	a := startNode(t, node.Config{Store: conn, Name: "A"})
	visSurvivesRestart(t, a, func() *testNode {
		a.Stop(t)
		return startNode(t, node.Config{Store: conn, Name: "B"})
	})
}

func visSurvivesRestart(t *testing.T, a *testNode, restart func() *testNode) {
	p := visParties(a, 500)
	p.UserAPI.Must(t).Heartbeat(p.User)
	set, err := p.UserAPI.PutVisibility(p.User, fmt.Sprintf(`{"presence":"allowlist","last_seen":"nobody","allow":[%d]}`, p.Allowed))
	if err != nil {
		t.Fatal(err)
	}
	b := restart()
	q := visParties(b, 500)
	if got, err := q.UserAPI.Visibility(p.User); err != nil || !reflect.DeepEqual(got, set) {
		t.Fatalf("after restart: %+v, %v; want %+v", got, err, set)
	}
	allowed, err1 := q.ViewerAPI.Presence(p.Allowed, p.User)
	refused, err2 := q.ViewerAPI.Presence(p.Refused, p.User)
	if err1 != nil || err2 != nil || !allowed.IsOnline || allowed.LastSeen != nil || refused.IsOnline || refused.Version != set.Version {
		t.Fatalf("after restart the allowed viewer reads %+v (%v), the refused one %+v (%v)", allowed, err1, refused, err2)
	}
}
