package client

import (
	"testing"
	"time"
)

func TestHeartbeatRetry(t *testing.T) {
	tests := []struct {
		failures int
		advised  time.Duration
		want     time.Duration
	}{
		{1, 0, time.Second},
		{2, 0, 2 * time.Second},
		{4, 0, 8 * time.Second},
		{20, 0, time.Minute},
		{20, 100 * time.Second, 33*time.Second + time.Second/3},
		{3, 100 * time.Second, 4 * time.Second},
		{5, 2 * time.Second, time.Second}, // never below a second
	}
	for _, tc := range tests {
		if got := heartbeatRetry(tc.failures, tc.advised); got != tc.want {
			t.Errorf("heartbeatRetry(%d, %v) = %v, want %v", tc.failures, tc.advised, got, tc.want)
		}
	}
}
