package client

import (
	"context"
	"time"
)

// Retry delays of HeartbeatLoop after a failed heartbeat.
const (
	heartbeatRetryMin = time.Second
	heartbeatRetryMax = time.Minute
)

// HeartbeatLoop heartbeats until ctx ends, scheduling each heartbeat by
// the server's advice in the answer to the previous one
// (HeartbeatIntervalSeconds), so a node under load can slow its clients
// down without any of them going offline. A failed heartbeat is retried
// sooner (see heartbeatRetry). It returns ctx's error.
func (c *Client) HeartbeatLoop(ctx context.Context) error {
	var wait, advised time.Duration
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		h, err := c.HeartbeatAdvice(ctx)
		if err != nil {
			failures++
			wait = heartbeatRetry(failures, advised)
			continue
		}
		failures = 0
		advised = time.Duration(h.HeartbeatIntervalSeconds) * time.Second
		wait = advised
	}
}

// heartbeatRetry is the wait before retrying after failures failed
// heartbeats in a row: doubling from heartbeatRetryMin up to
// heartbeatRetryMax, and never more than a third of the advised interval
// (when one is known), so that retries fit in the user's deadline.
func heartbeatRetry(failures int, advised time.Duration) time.Duration {
	d := heartbeatRetryMin
	for i := 1; i < failures && d < heartbeatRetryMax; i++ {
		d *= 2
	}
	d = min(d, heartbeatRetryMax)
	if advised > 0 {
		d = min(d, max(heartbeatRetryMin, advised/3))
	}
	return d
}
