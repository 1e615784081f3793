package loadgen

import (
	"testing"

	"github.com/presence-cluster/presence/internal/testkit"
)

// TestMain removes the presenced binary the storm test builds.
func TestMain(m *testing.M) { testkit.Main(m) }
