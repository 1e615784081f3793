package routing

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The pinned protoactor-go remote registers two unary calls it does not
// implement: ListProcesses and GetProcessDiagnostics panic ("implement
// me"), and gRPC does not recover a handler's panic, so one call to the
// remoting port killed the node. Nodes never make these calls, so they
// are refused here whatever the security settings, and a panic in the
// message stream's handler becomes an error for that stream instead of a
// crash. These interceptors run after the membership check (remoteauth).

// guardOptions are the interceptors every remoting server gets.
func guardOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(context.Context, any, *grpc.UnaryServerInfo, grpc.UnaryHandler) (any, error) {
			return nil, status.Error(codes.Unimplemented, "remoting: not served")
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) (err error) {
			defer func() {
				if p := recover(); p != nil {
					err = status.Error(codes.Internal, fmt.Sprintf("remoting: stream handler failed: %v", p))
				}
			}()
			return h(srv, ss)
		}),
	}
}
