package auth

import (
	"hash/maphash"
	"strings"
	"sync"
	"time"
)

// Verifying a token costs a signature check and about fifty allocations
// (most of a heartbeat's CPU), while a client presents the same token on
// every request until it expires. The cache remembers tokens that verified:
// the exact token string maps to its identity until the token's exp (plus
// leeway) or cacheTTL, whichever comes first. Only successes are cached, so
// a garbage token costs a full check every time but cannot evict much: each
// shard is bounded and evicts an arbitrary entry when full. A key reload
// empties it (entries remember the key set they were verified with).
const (
	cacheShards      = 16
	cacheShardSize   = 4096
	cacheTTL         = 5 * time.Minute
	cacheMaxTokenLen = 4096
)

type cacheEntry struct {
	id Identity
	// exp is the token's exp claim; expires is when the entry lapses.
	exp     time.Time
	expires time.Time
	keys    *keySet
}

type tokenCache struct {
	seed   maphash.Seed
	shards [cacheShards]cacheShard
}

type cacheShard struct {
	mu sync.Mutex
	m  map[string]cacheEntry
}

func newTokenCache() *tokenCache {
	c := &tokenCache{seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].m = make(map[string]cacheEntry)
	}
	return c
}

func (c *tokenCache) shard(token string) *cacheShard {
	return &c.shards[maphash.String(c.seed, token)%cacheShards]
}

func (c *tokenCache) get(token string, ks *keySet, now time.Time) (cacheEntry, bool) {
	sh := c.shard(token)
	sh.mu.Lock()
	e, ok := sh.m[token]
	if ok && (e.keys != ks || !now.Before(e.expires)) {
		delete(sh.m, token)
		ok = false
	}
	sh.mu.Unlock()
	return e, ok
}

func (c *tokenCache) put(token string, e cacheEntry) {
	if len(token) > cacheMaxTokenLen {
		return
	}
	// The caller's string may alias a request buffer the HTTP server
	// reuses (Fiber hands out zero-copy strings): a map key must own its
	// bytes.
	token = strings.Clone(token)
	sh := c.shard(token)
	sh.mu.Lock()
	if len(sh.m) >= cacheShardSize {
		for k := range sh.m {
			delete(sh.m, k)
			break
		}
	}
	sh.m[token] = e
	sh.mu.Unlock()
}
