package routing

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/presence-cluster/presence/cluster"
	"github.com/presence-cluster/presence/messages"
)

// A remote owner that cannot be reached fails its users' requests fast: the
// first attempt gives up within remoteAttempt and marks the member
// failing, and later requests (single, many at once, presence reads) are
// refused at once with *OwnerDown (503 with Retry-After in the API) instead
// of each waiting for the request timeout. A member memberlist suspects is
// refused at once too; a member that answers is used as usual.
func TestFailFastForOwnerDown(t *testing.T) {
	for _, tc := range []struct {
		name  string
		state string
		first time.Duration // bound on the first request
	}{
		{"unreachable", "alive", remoteAttempt + probeTimeout + 500*time.Millisecond},
		{"suspected by memberlist", "suspect", 100 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			view := cluster.NewView([]cluster.Member{
				{Name: "a", RemoteAddr: "nonhost", State: "alive"},
				{Name: "b", RemoteAddr: "127.0.0.1:1", State: tc.state},
			}, 1)
			r, _ := newTestRouter(t, nil, "a", func() *cluster.View { return view })
			var onB, onA []int64
			for id := int64(1); len(onB) < 3 || len(onA) < 1; id++ {
				if m, _ := view.Owner(id); m.Name == "b" {
					onB = append(onB, id)
				} else {
					onA = append(onA, id)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			get := func(id int64) *messages.Envelope {
				return &messages.Envelope{Body: &messages.Envelope_GetStatus{GetStatus: &messages.GetStatus{UserId: id, Create: true}}}
			}
			start := time.Now()
			_, err := r.Request(ctx, onB[0], get(onB[0]))
			took := time.Since(start)
			var down *OwnerDown
			if !errors.As(err, &down) || !errors.Is(err, ErrUnavailable) || RetryAfter(err) != DownRetryAfter {
				t.Fatalf("first request: err %v, want *OwnerDown wrapping ErrUnavailable with Retry-After %v", err, DownRetryAfter)
			}
			if took > tc.first {
				t.Fatalf("first request took %v, want at most %v", took, tc.first)
			}
			start = time.Now()
			if _, err := r.Request(ctx, onB[1], get(onB[1])); !errors.As(err, &down) {
				t.Fatalf("second request: %v, want *OwnerDown", err)
			}
			_, errs := r.RequestAll(ctx, []*messages.Envelope{get(onB[2]), get(onA[0])})
			if !errors.As(errs[0], &down) || errs[1] != nil {
				t.Fatalf("RequestAll: %v, want *OwnerDown for the user of b, nil for the user of a", errs)
			}
			if _, err := r.ReadPresence(ctx, []int64{onA[0], onB[0]}); !errors.As(err, &down) {
				t.Fatalf("ReadPresence: %v, want *OwnerDown", err)
			}
			if d := time.Since(start); d > 200*time.Millisecond {
				t.Fatalf("requests for a member suspected down took %v, want an immediate refusal", d)
			}
		})
	}
}

func TestHealthExpires(t *testing.T) {
	var h health
	now := time.Now()
	if h.failing("x", now) {
		t.Fatal("failing before any failure")
	}
	if !h.failed("x", now) || h.failed("x", now) {
		t.Fatal("failed: want true the first time only")
	}
	if !h.failing("x", now.Add(suspectFor-time.Millisecond)) {
		t.Fatal("not failing within suspectFor")
	}
	if h.failing("x", now.Add(suspectFor)) || h.n.Load() != 0 {
		t.Fatal("still failing after suspectFor")
	}
	h.failed("x", now)
	h.answered("x")
	if h.failing("x", now) || h.n.Load() != 0 {
		t.Fatal("failing after an answer")
	}
}

// A request of a kind the owner's release does not know (its advertised
// protocol version is older) is refused at once with *OlderMember (503),
// not sent to be ignored while the caller waits for the request timeout.
func TestOlderOwnerRefusedAtOnce(t *testing.T) {
	view := cluster.NewView([]cluster.Member{
		{Name: "a", RemoteAddr: "nonhost", State: "alive", Proto: cluster.ProtoVersion},
		{Name: "b", RemoteAddr: "127.0.0.1:1", State: "alive", Proto: cluster.ProtoV3 - 1},
	}, 1)
	r, _ := newTestRouter(t, nil, "a", func() *cluster.View { return view })
	id := int64(1)
	for ; ; id++ {
		if m, _ := view.Owner(id); m.Name == "b" {
			break
		}
	}
	inspect := &messages.Envelope{Body: &messages.Envelope_Inspect{Inspect: &messages.Inspect{UserId: id}}}
	start := time.Now()
	_, err := r.Request(context.Background(), id, inspect)
	var om *OlderMember
	if !errors.As(err, &om) || !errors.Is(err, ErrUnavailable) || om.Needs != cluster.ProtoV3 || om.Proto != cluster.ProtoV3-1 {
		t.Fatalf("Inspect at an older owner: %v, want *OlderMember wrapping ErrUnavailable", err)
	}
	_, errs := r.RequestAll(context.Background(), []*messages.Envelope{inspect})
	if !errors.As(errs[0], &om) {
		t.Fatalf("RequestAll Inspect at an older owner: %v, want *OlderMember", errs[0])
	}
	if d := time.Since(start); d > 200*time.Millisecond {
		t.Fatalf("refusals took %v, want immediate", d)
	}
}
