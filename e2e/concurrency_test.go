package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/presence-cluster/presence/node"
)

// TestConcurrentResponsesIntact: many users reading at once each get their
// own record. Regression test: api/handlers.go built bodies in a
// bytebufferpool buffer, handed it to Fiber's Ctx.Send (which keeps the
// slice, fasthttp SetBodyRaw) and put it back in the pool on return, so a
// response could be written from a buffer another request was filling;
// the race detector flags that reliably, torn bodies show up rarely.
func TestConcurrentResponsesIntact(t *testing.T) {
	n := startNode(t, node.Config{})
	const users, rounds = 16, 40
	for id := int64(1); id <= users; id++ {
		n.user(t, id, fmt.Sprint("user", id)).heartbeat()
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		bad   []string
		total int
	)
	for id := int64(1); id <= users; id++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := newClient(t, n.Base, n.HTTP, mint(t, id, fmt.Sprint("user", id), false))
			for i := range rounds {
				var path string
				switch i % 3 {
				case 0:
					path = "/users/me/status"
				case 1:
					path = fmt.Sprintf("/users/%d/presence", id)
				case 2:
					path = fmt.Sprintf("/users/presence?user_ids=%d", id)
				}
				r, err := c.send(http.MethodGet, path, nil)
				mu.Lock()
				total++
				if err != nil || r.Code != http.StatusOK {
					bad = append(bad, fmt.Sprintf("%s: %v %v", path, err, r))
				} else if got := bodyUserID(r.Body); got != id {
					bad = append(bad, fmt.Sprintf("user %d GET %s got body %s", id, path, r.Body))
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(bad) > 0 {
		for i, b := range bad {
			if i == 5 {
				break
			}
			t.Error(b)
		}
		t.Fatalf("%d of %d concurrent responses were not the caller's own record", len(bad), total)
	}
}

// bodyUserID returns the user_id of a status or presence record, or of the
// only element of a batch answer; -1 when the body is neither.
func bodyUserID(body []byte) int64 {
	var one struct {
		UserID int64 `json:"user_id"`
	}
	if json.Unmarshal(body, &one) == nil && one.UserID != 0 {
		return one.UserID
	}
	var list []struct {
		UserID int64 `json:"user_id"`
	}
	if json.Unmarshal(body, &list) == nil && len(list) == 1 {
		return list[0].UserID
	}
	return -1
}
