package browsere2e

import (
	"testing"

	"github.com/presence-cluster/presence/internal/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }
