package e2e

// A 413 (and a 431) that ordinary clients read: the server drains a
// bounded amount of the unread request before closing, so the kernel does
// not reset the connection under the response.

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/presence-cluster/presence/api/ws"
	"github.com/presence-cluster/presence/node"
)

// TestBodyTooLargeReadByGoClient: Go's net/http client, over real TCP,
// sending a 4 MiB body to a node with the default 16 KiB limit, gets the
// 413 and its JSON detail 20 times out of 20 (before the drain it got
// "connection reset by peer" most of the time).
func TestBodyTooLargeReadByGoClient(t *testing.T) {
	t.Parallel()
	n := startNode(t, node.Config{})
	tok := mint(t, 1301, "big", false)
	body := bytes.Repeat([]byte("x"), 4<<20)
	expectRefusedToGoClient(t, 20, http.StatusRequestEntityTooLarge, func() *http.Request {
		req, _ := http.NewRequest(http.MethodPut, n.Base+"/users/me/status", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		return req
	})
}

// TestHeaderTooLargeReadByGoClient: a 64 KiB header gets 431 with a
// detail, read by Go's client.
func TestHeaderTooLargeReadByGoClient(t *testing.T) {
	t.Parallel()
	n := startNode(t, node.Config{})
	expectRefusedToGoClient(t, 5, http.StatusRequestHeaderFieldsTooLarge, func() *http.Request {
		req, _ := http.NewRequest(http.MethodGet, n.Base+"/healthz", nil)
		req.Header.Set("X-Padding", strings.Repeat("p", 64<<10))
		return req
	})
}

// expectRefusedToGoClient sends the request newReq makes times times with
// Go's net/http client, each on a fresh connection (the server closes
// every one), and fails unless each answer is code with a JSON detail.
func expectRefusedToGoClient(t *testing.T, times, code int, newReq func() *http.Request) {
	t.Helper()
	for i := range times {
		cl := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		res, err := cl.Do(newReq())
		if err != nil {
			t.Fatalf("request %d of %d: %v (want a %d)", i+1, times, err, code)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != code || !strings.Contains(string(b), `"detail"`) {
			t.Fatalf("request %d of %d: %d %s", i+1, times, res.StatusCode, b)
		}
	}
}

// TestLingeringCloseBounded: the drain after a 413 is bounded in time (a
// client that announces a huge body and sends nothing is closed after
// ws.DefaultDrainTime) and in bytes (a client that keeps sending is cut
// off after about ws.DefaultDrainBytes, not read forever).
func TestLingeringCloseBounded(t *testing.T) {
	t.Parallel()
	n := startNode(t, node.Config{})
	tok := mint(t, 1302, "big", false)
	head := "PUT /users/me/status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok + "\r\nContent-Type: application/json\r\n"

	t.Run("time", func(t *testing.T) {
		c := dialTCP(t, n.HTTPAddr())
		start := time.Now()
		if _, err := io.WriteString(c, head+"Content-Length: 1073741824\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(ws.DefaultDrainTime + 10*time.Second))
		got, err := io.ReadAll(c) // the 413, then EOF: the server closed its side
		if err != nil || !strings.HasPrefix(string(got), "HTTP/1.1 413") {
			t.Fatalf("response %q, err %v", got, err)
		}
		// The server still reads (lingers); it closes entirely once the
		// drain time is over: a write then fails.
		deadline := start.Add(ws.DefaultDrainTime + 5*time.Second)
		for {
			if _, err := c.Write([]byte("x")); err != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the server still reads %v after the 413 (drain time %v)", time.Since(start), ws.DefaultDrainTime)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if took := time.Since(start); took < ws.DefaultDrainTime-time.Second {
			t.Fatalf("closed after %v, before the drain time %v", took, ws.DefaultDrainTime)
		}
	})

	t.Run("bytes", func(t *testing.T) {
		c := dialTCP(t, n.HTTPAddr())
		if _, err := io.WriteString(c, head+"Content-Length: 1073741824\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		chunk := make([]byte, 64<<10)
		sent := 0
		_ = c.SetWriteDeadline(time.Now().Add(ws.DefaultDrainTime + 5*time.Second))
		for sent < 256<<20 {
			k, err := c.Write(chunk)
			sent += k
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatalf("write stalled after %d bytes without the server closing", sent)
				}
				break
			}
		}
		// Kernel buffers on both sides hold a few MiB beyond what the
		// server read.
		if sent >= 64<<20 {
			t.Fatalf("the server took %d MiB of a refused body (drain cap %d MiB)", sent>>20, ws.DefaultDrainBytes>>20)
		}
		t.Logf("client wrote %.1f MiB before the server closed (drain cap %d MiB)", float64(sent)/(1<<20), ws.DefaultDrainBytes>>20)
	})
}
