package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/presence-cluster/presence/internal/testkit"
	"github.com/presence-cluster/presence/node"
	"github.com/presence-cluster/presence/wire"
)

func TestClusterCommandListsTheNode(t *testing.T) {
	const secret = "cluster-cmd-secret-0123456789abcdef"
	node := testkit.StartStandalone(t, node.Config{Name: "node-under-test"}, secret)

	var out, errOut bytes.Buffer
	code := run([]string{"cluster", "--url", "http://" + node.HTTPAddr(), "--secret", secret}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d, stderr: %s", code, errOut.String())
	}
	for _, want := range []string{"standalone", "node-under-test *", "alive", node.HTTPAddr()} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}

	// --json prints the node's answer as it came.
	out.Reset()
	if code := run([]string{"cluster", "--url", "http://" + node.HTTPAddr() + "/", "--secret", secret, "--json"}, &out, &errOut); code != 0 {
		t.Fatalf("--json: exit %d, stderr: %s", code, errOut.String())
	}
	var cs wire.ClusterStatus
	if err := json.Unmarshal(out.Bytes(), &cs); err != nil || !cs.Standalone || cs.Node != "node-under-test" || len(cs.Members) != 1 {
		t.Fatalf("--json printed %s (%v)", out.String(), err)
	}

	// A wrong secret mints a token the node refuses: the command says so.
	out.Reset()
	errOut.Reset()
	if code := run([]string{"cluster", "--url", "http://" + node.HTTPAddr(), "--secret", "wrong"}, &out, &errOut); code != 1 {
		t.Fatalf("exit %d with a wrong secret, want 1", code)
	}
	if !strings.Contains(errOut.String(), "401") {
		t.Errorf("stderr lacks the 401: %s", errOut.String())
	}
}
