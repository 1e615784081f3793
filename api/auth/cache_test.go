package auth

import (
	"testing"
	"time"
)

func TestCacheServesVerifiedTokensUntilExpiry(t *testing.T) {
	secret := []byte("cache-test-secret")
	v, err := NewVerifier(Config{Secret: secret, Leeway: -1})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := Mint(secret, MintClaims{UserID: 42, Username: "ann", TTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	id, err := v.Verify(tok)
	if err != nil || id.UserID != 42 {
		t.Fatalf("first verify: %+v %v", id, err)
	}
	ks := v.keys.Load()
	if _, ok := v.cache.get(tok, ks, time.Now()); !ok {
		t.Fatal("a verified token is not cached")
	}
	if id, err := v.Verify(tok); err != nil || id.UserID != 42 || id.Username != "ann" {
		t.Fatalf("cached verify: %+v %v", id, err)
	}
	// The entry dies with the token: a cached token is refused after exp.
	if _, ok := v.cache.get(tok, ks, time.Now().Add(3*time.Second)); ok {
		t.Fatal("cache serves a token past its exp")
	}
	// A reload (new key set) empties the cache for that token.
	if err := v.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, ok := v.cache.get(tok, v.keys.Load(), time.Now()); ok {
		t.Fatal("cache survives a key reload")
	}
	// Tampered tokens are never cached, and never answered from the cache.
	bad := tok[:len(tok)-2] + "xx"
	if _, err := v.Verify(bad); err == nil {
		t.Fatal("tampered token verified")
	}
	if _, ok := v.cache.get(bad, v.keys.Load(), time.Now()); ok {
		t.Fatal("a failed token was cached")
	}
}

func TestCacheExpiredTokenRefusedAfterCaching(t *testing.T) {
	secret := []byte("cache-test-secret")
	v, err := NewVerifier(Config{Secret: secret, Leeway: -1})
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := Mint(secret, MintClaims{UserID: 7, Username: "b", TTL: 1100 * time.Millisecond})
	if _, err := v.Verify(tok); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := v.Verify(tok); err != nil {
			return // refused once expired, as without a cache
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("an expired token still verifies (served from the cache)")
}

func TestCacheBounded(t *testing.T) {
	c := newTokenCache()
	ks := &keySet{}
	for i := range cacheShards * cacheShardSize * 2 {
		c.put(string(rune(i))+"token"+time.Duration(i).String(), cacheEntry{expires: time.Now().Add(time.Hour), keys: ks})
	}
	total := 0
	for i := range c.shards {
		total += len(c.shards[i].m)
	}
	if total > cacheShards*cacheShardSize {
		t.Fatalf("cache holds %d entries, bound is %d", total, cacheShards*cacheShardSize)
	}
}

// TestCacheKeyOwnsItsBytes: callers hand Verify strings that alias reused
// request buffers; the cache must not keep the caller's bytes as its key,
// or the entry changes under it when the buffer is reused.
func TestCacheKeyOwnsItsBytes(t *testing.T) {
	secret := []byte("cache-test-secret")
	v, err := NewVerifier(Config{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	tokA, _ := Mint(secret, MintClaims{UserID: 1, Username: "a", TTL: time.Hour})
	buf := []byte(tokA)
	if id, err := v.Verify(unsafeString(buf)); err != nil || id.UserID != 1 {
		t.Fatalf("verify A: %+v %v", id, err)
	}
	for i := range buf { // the server reuses its buffer for the next request
		buf[i] = 'x'
	}
	if _, ok := v.cache.get(tokA, v.keys.Load(), time.Now()); !ok {
		t.Fatal("the cached entry changed when the caller's buffer was reused")
	}
}
