package actors

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// testShards is the activator shard count of every test env.
var testShards int

var shardCounts = flag.String("actors.shards", "1,4", "comma-separated activator shard counts the package's tests run with, one full run each")

// TestMain runs the whole package once per shard count: the activator's
// behaviour must not depend on how many shards split the users.
func TestMain(m *testing.M) {
	flag.Parse()
	for _, f := range strings.Split(*shardCounts, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "-actors.shards: %q is not a shard count\n", f)
			os.Exit(2)
		}
		testShards = n
		fmt.Printf("actors tests with %d activator shard(s)\n", n)
		if code := m.Run(); code != 0 {
			os.Exit(code)
		}
	}
	os.Exit(0)
}

// withShards overrides the shard count of one env.
func withShards(n int) envOption {
	return func(_ *env, c *Config) { c.Shards = n }
}
