package routing

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// The interceptors are really installed on protoactor-go's gRPC server
// (its options replace rather than add): a raw gRPC client without the
// credential is refused on the unary calls and on the message stream;
// with a credential of the key, the stream opens. (One remote in this
// test binary: two race inside the library.)
func TestRemoteRefusesCallsWithoutCredential(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	var refused atomic.Int32
	system := actor.NewActorSystem()
	r, addr, err := StartRemote(system, Config{BindAddr: "127.0.0.1:0", ClusterKey: key,
		OnRefused: func(string) { refused.Add(1) }}, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Shutdown(false)

	call := func(opts ...grpc.DialOption) (unary, stream codes.Code) {
		conn, err := grpc.Dial(addr, append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))...)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c := remote.NewRemotingClient(conn)
		_, err = c.ListProcesses(ctx, &remote.ListProcessesRequest{Pattern: ""})
		unary = status.Code(err)
		s, err := c.Receive(ctx)
		if err == nil {
			_, err = s.Recv() // the server answers or refuses
			if status.Code(err) == codes.DeadlineExceeded {
				err = nil // accepted: it waits for a ConnectRequest
			}
		}
		return unary, status.Code(err)
	}
	if u, s := call(); u != codes.Unauthenticated || s != codes.Unauthenticated {
		t.Fatalf("no credential: ListProcesses %v, Receive %v; want Unauthenticated for both", u, s)
	}
	if u, s := call(grpc.WithPerRPCCredentials(newClusterAuth([]byte("another-key-0123456789abcdef0123")))); u != codes.Unauthenticated || s != codes.Unauthenticated {
		t.Fatalf("another key: ListProcesses %v, Receive %v; want Unauthenticated for both", u, s)
	}
	if n := refused.Load(); n != 4 {
		t.Errorf("OnRefused called %d times, want 4", n)
	}
	// A member passes the membership check; the unary calls the library
	// does not implement (they panicked: a crash) are refused all the same,
	// and the node lives on.
	if u, s := call(grpc.WithPerRPCCredentials(newClusterAuth(key))); u != codes.Unimplemented || s != codes.OK {
		t.Fatalf("with the key: ListProcesses %v, Receive %v; want Unimplemented and an open stream", u, s)
	}
}
