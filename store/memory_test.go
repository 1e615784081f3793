package store_test

import (
	"testing"

	"github.com/presence-cluster/presence/store"
	"github.com/presence-cluster/presence/store/storetest"
)

func TestMemoryConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return store.NewMemory() })
}
