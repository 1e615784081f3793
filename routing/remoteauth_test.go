package routing

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func TestClusterAuthVerify(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	now := time.Unix(1_800_000_000, 0)
	at := func(k []byte, when time.Time) string {
		a := newClusterAuth(k)
		a.now = func() time.Time { return when }
		c, err := a.credential()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	good := at(key, now)
	// tamper changes the first character of part i, and with strict
	// decoding the last one too (its low bits are padding).
	tamper := func(c string, i int, last bool) string {
		p := strings.Split(c, ".")
		k := 0
		if last {
			k = len(p[i]) - 1
		}
		swap := map[bool]string{true: "A", false: "B"}[p[i][k] != 'A']
		p[i] = p[i][:k] + swap + p[i][k+1:]
		return strings.Join(p, ".")
	}
	tests := []struct {
		name, cred string
		ok         bool
	}{
		{"fresh credential of the key", good, true},
		{"within the window, early", at(key, now.Add(-AuthWindow+time.Second)), true},
		{"within the window, late", at(key, now.Add(AuthWindow-time.Second)), true},
		{"wrong key", at([]byte("another-cluster-key-0123456789ab"), now), false},
		{"too old", at(key, now.Add(-AuthWindow-time.Second)), false},
		{"from the future", at(key, now.Add(AuthWindow+time.Second)), false},
		{"MAC tampered", tamper(good, 3, false), false},
		{"MAC's last character changed", tamper(good, 3, true), false},
		{"nonce changed", tamper(good, 2, false), false},
		{"time changed", strings.Replace(good, ".1800000000.", ".1800000001.", 1), false},
		{"other version", "v2" + strings.TrimPrefix(good, "v1"), false},
		{"empty", "", false},
		{"garbage", "v1.x.y.z", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newClusterAuth(key)
			a.now = func() time.Time { return now }
			if err := a.verify(tc.cred); (err == nil) != tc.ok {
				t.Fatalf("verify(%q) = %v, want ok=%v", tc.cred, err, tc.ok)
			}
		})
	}
}

func TestClusterAuthRefusesReplay(t *testing.T) {
	a := newClusterAuth([]byte("0123456789abcdef0123456789abcdef"))
	c, err := a.credential()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.verify(c); err != nil {
		t.Fatalf("first use: %v", err)
	}
	if err := a.verify(c); err == nil {
		t.Fatal("the same credential was accepted twice")
	}
}

func TestClusterAuthReplayCacheBounded(t *testing.T) {
	a := newClusterAuth([]byte("0123456789abcdef0123456789abcdef"))
	now := time.Unix(1_800_000_000, 0)
	for i := range authMaxNonces {
		if err := a.remember(strconv.Itoa(i), now); err != nil {
			t.Fatalf("nonce %d: %v", i, err)
		}
	}
	if err := a.remember("one-more", now); err == nil {
		t.Fatal("a full cache of live nonces accepted one more")
	}
	// Once the remembered nonces expire, room is made again.
	if err := a.remember("later", now.Add(3*AuthWindow)); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
	if len(a.nonces) != 1 {
		t.Fatalf("expired nonces kept: %d", len(a.nonces))
	}
}

func TestClusterAuthCheckMetadata(t *testing.T) {
	a := newClusterAuth([]byte("0123456789abcdef0123456789abcdef"))
	md, err := a.GetRequestMetadata(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx := metadata.NewIncomingContext(context.Background(), metadata.New(md))
	if err := a.check(ctx); err != nil {
		t.Fatalf("own credential refused: %v", err)
	}
	if err := a.check(context.Background()); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("no credential: %v, want Unauthenticated", err)
	}
}
