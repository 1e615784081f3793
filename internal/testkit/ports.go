package testkit

import (
	"net"
	"strconv"
	"testing"
)

// FreePort returns a port free on 127.0.0.1 for both TCP and UDP (gossip
// uses both).
func FreePort(t testing.TB) int {
	t.Helper()
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		ln.Close()
		if err != nil {
			continue
		}
		pc.Close()
		return port
	}
	t.Fatal("no free port")
	return 0
}

// FreePorts returns n distinct free ports.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	used := map[int]bool{}
	out := make([]int, 0, n)
	for len(out) < n {
		if p := FreePort(t); !used[p] {
			used[p] = true
			out = append(out, p)
		}
	}
	return out
}

// FreeAddr returns a loopback address whose port nobody listens on now.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return "127.0.0.1:" + strconv.Itoa(FreePort(t))
}
