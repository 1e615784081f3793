package routing

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// The cluster key proves membership on the remoting port. Every gRPC call
// a node makes to another (protoactor-go opens one long-lived Receive
// stream per peer) carries, as metadata, a credential made fresh for that
// call:
//
//	v1.<unix seconds>.<16 random bytes, base64url>.<HMAC-SHA256, base64url>
//
// The HMAC key is derived from the cluster key (HMAC-SHA256 of a fixed
// label keyed by it), so the credential never reveals the gossip
// encryption key itself and the two uses cannot be confused. The server
// accepts a credential only if its MAC verifies, its time is within
// AuthWindow of the server's clock, and its nonce was not seen before in
// that window (a replay cache, bounded). Anything else is refused with
// codes.Unauthenticated before protoactor-go sees a byte of the stream.

const (
	// authMetadataKey is the gRPC metadata key of the credential.
	authMetadataKey = "x-presence-member"
	// authVersion prefixes every credential, so the scheme can change.
	authVersion = "v1"
	// authLabel separates the remoting MAC key from other uses of the
	// cluster key.
	authLabel = "presence remoting membership v1"
	// AuthWindow is how far a credential's time may be from the
	// receiver's clock; nodes' clocks must agree within it.
	AuthWindow = 2 * time.Minute
	// authMaxNonces bounds the replay cache. Each peer opens a stream per
	// connection, so a healthy cluster uses a handful per window; a flood
	// beyond the bound is refused (fail closed) rather than growing memory.
	authMaxNonces = 1 << 16
)

// errUnauthenticated is what a peer without a valid credential is told:
// nothing about which check failed.
var errUnauthenticated = status.Error(codes.Unauthenticated, "remoting: membership not proven")

// clusterAuth makes and checks remoting credentials from the cluster key.
type clusterAuth struct {
	mac []byte // derived MAC key
	now func() time.Time
	// refused, when set, is told of each refused call (peer address).
	refused func(peer string)

	mu     sync.Mutex
	nonces map[string]time.Time // nonce -> time it may be forgotten
}

// newClusterAuth derives the remoting MAC key from the cluster key.
func newClusterAuth(clusterKey []byte) *clusterAuth {
	h := hmac.New(sha256.New, clusterKey)
	h.Write([]byte(authLabel))
	return &clusterAuth{mac: h.Sum(nil), now: time.Now, nonces: map[string]time.Time{}}
}

// sign returns the MAC of a credential's time and nonce.
func (a *clusterAuth) sign(ts, nonce string) []byte {
	h := hmac.New(sha256.New, a.mac)
	h.Write([]byte(authVersion + "." + ts + "." + nonce))
	return h.Sum(nil)
}

// credential makes a fresh credential.
func (a *clusterAuth) credential() (string, error) {
	var n [16]byte
	if _, err := rand.Read(n[:]); err != nil {
		return "", fmt.Errorf("remoting credential nonce: %w", err)
	}
	ts := strconv.FormatInt(a.now().Unix(), 10)
	nonce := base64.RawURLEncoding.EncodeToString(n[:])
	return authVersion + "." + ts + "." + nonce + "." + base64.RawURLEncoding.EncodeToString(a.sign(ts, nonce)), nil
}

// verify checks a credential: MAC, time window, and first use of its
// nonce.
func (a *clusterAuth) verify(cred string) error {
	parts := strings.Split(cred, ".")
	if len(parts) != 4 || parts[0] != authVersion {
		return errors.New("malformed credential")
	}
	// Strict: one encoding per MAC, no slack in the trailing bits.
	mac, err := base64.RawURLEncoding.Strict().DecodeString(parts[3])
	if err != nil || !hmac.Equal(mac, a.sign(parts[1], parts[2])) {
		return errors.New("bad MAC")
	}
	secs, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return errors.New("bad time")
	}
	now := a.now()
	if d := now.Sub(time.Unix(secs, 0)); d > AuthWindow || d < -AuthWindow {
		return fmt.Errorf("credential time %ds off", int64(d/time.Second))
	}
	return a.remember(parts[2], now)
}

// remember records a nonce for the window, refusing one already seen.
func (a *clusterAuth) remember(nonce string, now time.Time) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, seen := a.nonces[nonce]; seen {
		return errors.New("replayed credential")
	}
	if len(a.nonces) >= authMaxNonces {
		for n, until := range a.nonces {
			if now.After(until) {
				delete(a.nonces, n)
			}
		}
		if len(a.nonces) >= authMaxNonces {
			return errors.New("replay cache full")
		}
	}
	// A credential is valid up to AuthWindow either side of now, so its
	// nonce must be remembered for twice the window.
	a.nonces[nonce] = now.Add(2 * AuthWindow)
	return nil
}

// check verifies the credential in an incoming call's metadata.
func (a *clusterAuth) check(ctx context.Context) error {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get(authMetadataKey)
	if len(vals) != 1 || a.verify(vals[0]) != nil {
		if a.refused != nil {
			addr := "unknown"
			if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
				addr = p.Addr.String()
			}
			a.refused(addr)
		}
		return errUnauthenticated
	}
	return nil
}

// GetRequestMetadata implements credentials.PerRPCCredentials: a fresh
// credential per call.
func (a *clusterAuth) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	c, err := a.credential()
	if err != nil {
		return nil, err
	}
	return map[string]string{authMetadataKey: c}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials: the
// credential also works on plain gRPC (see SECURITY.md for what that does
// and does not protect).
func (a *clusterAuth) RequireTransportSecurity() bool { return false }

// serverOptions are the interceptors that refuse calls without a valid
// credential.
func (a *clusterAuth) serverOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if err := a.check(ctx); err != nil {
				return nil, err
			}
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if err := a.check(ss.Context()); err != nil {
				return err
			}
			return h(srv, ss)
		}),
	}
}

// dialOptions attach a credential to every call this node makes.
func (a *clusterAuth) dialOptions() []grpc.DialOption {
	return []grpc.DialOption{grpc.WithPerRPCCredentials(a)}
}
