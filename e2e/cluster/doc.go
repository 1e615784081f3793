// Package clustere2e drives presence clusters end to end over real HTTP and
// WebSocket on loopback: three or four nodes started in-process with
// node.Start (sharing one memory store, as processes share a database),
// and three presenced processes.
//
// The in-process tests start several protoactor-go remotes in one process,
// which trips the race detector inside the library (grpclog.SetLoggerV2),
// so their files carry `//go:build !race`; under -race only the
// multi-process test runs (each process has one remote). Run both:
//
//	go test -count=1 ./e2e/cluster/          # everything, about 2 minutes
//	go test -race -count=1 ./e2e/cluster/    # the multi-process test only
//
// -short skips the multi-process test (it builds cmd/presenced).
package clustere2e
