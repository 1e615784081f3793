// Package testkit is the one end-to-end test harness of the project: it
// starts presence nodes (in this process, as presenced processes, or as a
// Docker Compose cluster) and gives tests the pieces every e2e package
// needs: tokens, a raw HTTP helper and typed REST calls, a WebSocket test
// connection that records every frame, polling with deadlines, free ports,
// a log sink, fake clocks, and the presenced binary built once per test
// binary.
//
// It is a non-test package so that every e2e package can import it; nothing
// outside tests may.
package testkit
