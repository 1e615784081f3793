package api

import (
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"golang.org/x/time/rate"
)

// Defaults of the rate limits.
const (
	// DefaultWriteRate is each user's sustained rate of writes (PUT status,
	// heartbeat) per second on one node, and DefaultWriteBurst the burst
	// above it. Clients heartbeat every 30-60 s, so this only stops abuse.
	DefaultWriteRate  = 5.0
	DefaultWriteBurst = 20
)

const limiterShards = 64

// userLimiter keeps one token bucket per user, forgetting buckets that have
// been full (idle) for a while so memory follows active users.
type userLimiter struct {
	limit  rate.Limit
	burst  int
	shards [limiterShards]limiterShard
}

type limiterShard struct {
	mu      sync.Mutex
	buckets map[int64]*rate.Limiter
}

func newUserLimiter(perSecond float64, burst int) *userLimiter {
	l := &userLimiter{limit: rate.Limit(perSecond), burst: burst}
	for i := range l.shards {
		l.shards[i].buckets = make(map[int64]*rate.Limiter)
	}
	return l
}

// allow takes a token for userID; when none is left it returns how long
// until one is.
func (l *userLimiter) allow(userID int64, now time.Time) (bool, time.Duration) {
	sh := &l.shards[uint64(userID)%limiterShards]
	sh.mu.Lock()
	b, ok := sh.buckets[userID]
	if !ok {
		b = rate.NewLimiter(l.limit, l.burst)
		sh.buckets[userID] = b
	}
	r := b.ReserveN(now, 1)
	delay := r.DelayFrom(now)
	if delay > 0 {
		r.CancelAt(now)
	}
	sh.mu.Unlock()
	return delay == 0, delay
}

// sweep drops buckets that are full again: forgetting them changes
// nothing, since a new bucket starts full.
func (l *userLimiter) sweep(now time.Time) {
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		for id, b := range sh.buckets {
			if b.TokensAt(now) >= float64(l.burst) {
				delete(sh.buckets, id)
			}
		}
		sh.mu.Unlock()
	}
}

// limitWrites is the middleware that applies the per-user write limit.
func (s *Server) limitWrites(c *fiber.Ctx) error {
	if s.writes == nil {
		return c.Next()
	}
	ok, wait := s.writes.allow(identity(c).UserID, time.Now())
	if !ok {
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		return writeDetail(c, fiber.StatusTooManyRequests, "Too many requests, retry later")
	}
	return c.Next()
}
