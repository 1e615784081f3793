package actors

import (
	"math/bits"
	"sync"
)

// A node's users are split over several activator shards, each an actor
// with its own mailbox, so that routing to user actors uses every core
// rather than one. A user always lands on the same shard of a node (its
// actor is a child of exactly that shard), so it can never be activated
// twice on one node.

// shardOf returns the shard, in [0, n), of userID. The hash is murmur3's
// 64-bit finalizer, unrelated to the splitmix64 mix the cluster's placement
// uses, so the users one node owns spread over its shards as evenly as all
// users do.
func shardOf(userID int64, n int) int {
	if n <= 1 {
		return 0
	}
	x := uint64(userID)
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	// Lemire's multiply-shift maps the hash onto [0, n) without a division.
	hi, _ := bits.Mul64(x, uint64(n))
	return int(hi)
}

// childTable is a shard's active user actors and the cells they publish
// their presence in. The shard is its only writer and reads it without
// locking; batch presence reads, made on the sender's goroutine by the
// dispatcher, read it under the read lock.
type childTable struct {
	mu sync.RWMutex
	m  map[int64]child
}

func newChildTable() *childTable {
	return &childTable{m: make(map[int64]child)}
}

// own returns id's child; only the owning shard calls it, unlocked.
func (t *childTable) own(id int64) (child, bool) {
	c, ok := t.m[id]
	return c, ok
}

// lookup returns id's child for a reader other than the owning shard.
func (t *childTable) lookup(id int64) (child, bool) {
	t.mu.RLock()
	c, ok := t.m[id]
	t.mu.RUnlock()
	return c, ok
}

func (t *childTable) put(id int64, c child) {
	t.mu.Lock()
	t.m[id] = c
	t.mu.Unlock()
}

func (t *childTable) remove(id int64) {
	t.mu.Lock()
	delete(t.m, id)
	t.mu.Unlock()
}

// size counts the children, for any reader.
func (t *childTable) size() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.m)
}
