package e2e

import (
	"sync"
	"testing"
)

// Versions start from the clock when a record is created with no stored
// predecessor (microseconds since the epoch), then rise by one per visible
// change. Tests count changes: a user's n-th version (1: the creating
// change).

// clockBaseMin is 2020-01-01 in microseconds: a creating version below it
// is not clock-derived.
const clockBaseMin = 1_577_836_800_000_000

// nthOf returns the change number of a status record's version, counted
// from its creation: the creating change's version is its created_at.
func nthOf(st Status) uint64 {
	if st.CreatedAt == nil {
		return st.Version
	}
	return st.Version - uint64(st.CreatedAt.UnixMicro()) + 1
}

type versionKey struct {
	tb testing.TB
	id int64
}

// versionBases holds each test's creating version per user, as first
// inferred by isNth.
var versionBases sync.Map

// isNth reports whether v is user id's n-th version in test tb. The first
// call about a user infers its creating version from v and n, which must
// then be clock-derived; later calls check against it.
//
// An n that is itself clock-derived is a version, not a count: v must
// equal it.
func isNth(tb testing.TB, id int64, v, n uint64) bool {
	if n >= clockBaseMin {
		return v == n
	}
	k := versionKey{tb, id}
	if base, ok := versionBases.Load(k); ok {
		return v == base.(uint64)+n-1
	}
	if v+1 < n || v-n+1 < clockBaseMin {
		return false
	}
	versionBases.Store(k, v-n+1)
	tb.Cleanup(func() { versionBases.Delete(k) })
	return true
}
