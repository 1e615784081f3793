package ws

// FuzzWebSocketFrame drives a real in-process server (Fiber, hub, sessions,
// user actors over the memory store) through one WebSocket connection that
// is reused across iterations. Run it with
//
//	go test ./api/ws -run '^$' -fuzz '^FuzzWebSocketFrame$' -fuzztime 20s
//
// Helpers here start with fuzzWS so they do not collide with other tests.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	fws "github.com/fasthttp/websocket"
	"github.com/gofiber/fiber/v2"

	"github.com/presence-cluster/presence/actors"
	"github.com/presence-cluster/presence/api/auth"
	"github.com/presence-cluster/presence/cluster"
	"github.com/presence-cluster/presence/routing"
	"github.com/presence-cluster/presence/store"
)

// fuzzWSMaxFrame is small, so the fuzzer reaches the 1009 close often.
const fuzzWSMaxFrame = 4096

// fuzzWSEnv is the server and the client connection of one fuzz process.
type fuzzWSEnv struct {
	addr  string
	token string
	conn  *fws.Conn
}

func fuzzWSStart(f *testing.F) *fuzzWSEnv {
	f.Helper()
	quiet := slog.New(slog.DiscardHandler)
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return quiet }))
	// A standalone node's router: the only member owns every user.
	router := routing.New(system, cluster.NewStatic(cluster.Member{Name: "fuzz", State: "alive"}), nil, quiet)
	host, err := actors.NewHost(system, actors.Config{Store: store.NewMemory(), Logger: quiet}, nil)
	if err != nil {
		f.Fatal(err)
	}
	secret := []byte("fuzz-ws-secret-0123456789abcdef")
	v, err := auth.NewVerifier(auth.Config{Secret: secret})
	if err != nil {
		f.Fatal(err)
	}
	s, err := New(Config{
		MaxFrame: fuzzWSMaxFrame, MaxSubscriptions: 200,
		// The frame rate limit has its own e2e tests; here every frame
		// must reach the parser.
		FrameRate: 1e9, FrameBurst: 1e9,
	}, Deps{Router: router, Verifier: v, System: system, Logger: quiet})
	if err != nil {
		f.Fatal(err)
	}
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	s.Mount(app, "/ws/presence")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = app.Listener(s.Listener(ln))
	}()
	token, err := auth.Mint(secret, auth.MintClaims{UserID: 4242, Username: "fuzz", TTL: 24 * time.Hour})
	if err != nil {
		f.Fatal(err)
	}
	env := &fuzzWSEnv{addr: ln.Addr().String(), token: token}
	f.Cleanup(func() {
		if env.conn != nil {
			env.conn.Close()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Drain()
		s.CloseAll(CloseDraining, "server draining")
		_ = app.ShutdownWithContext(ctx)
		_ = s.Wait(ctx)
		<-served
		_ = host.Stop()
		system.Shutdown()
	})
	return env
}

// connect returns the open connection, dialling a new one after a close.
func (e *fuzzWSEnv) connect(t *testing.T) *fws.Conn {
	t.Helper()
	if e.conn != nil {
		return e.conn
	}
	u := "ws://" + e.addr + "/ws/presence?" + url.Values{"token": {e.token}}.Encode()
	c, res, err := (&fws.Dialer{HandshakeTimeout: 10 * time.Second}).Dial(u, nil)
	if err != nil {
		code := 0
		if res != nil {
			code = res.StatusCode
		}
		t.Fatalf("dial: %v (HTTP %d)", err, code)
	}
	e.conn = c
	return c
}

func (e *fuzzWSEnv) drop() {
	if e.conn != nil {
		e.conn.Close()
		e.conn = nil
	}
}

// fuzzWSInternals must not appear in an error frame's detail.
var fuzzWSInternals = []string{
	"json:", "invalid character", "cannot unmarshal", "unexpected end", "runtime", "panic",
	"goroutine", ".go:", "strconv.", "%!", "<nil>", "fasthttp", "fiber", "protoactor",
}

// fuzzWSCheckFrame checks one server frame: a JSON text frame of a known
// type; an error frame is {"type":"error","detail":...} with nothing
// internal in its detail. It returns the frame's type and detail.
func fuzzWSCheckFrame(mt int, msg []byte) (typ, detail string, err error) {
	if mt != fws.TextMessage {
		return "", "", fmt.Errorf("message type %d", mt)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(msg, &obj); err != nil {
		return "", "", fmt.Errorf("not a JSON object: %v", err)
	}
	if err := json.Unmarshal(obj["type"], &typ); err != nil {
		return "", "", errors.New("no string type")
	}
	switch typ {
	case "error":
		if len(obj) != 2 || json.Unmarshal(obj["detail"], &detail) != nil || detail == "" {
			return typ, "", errors.New(`error frame is not {"type","detail"} with a detail`)
		}
		// An unknown type is quoted back: that part is the client's own.
		check := detail
		const unknown = `unknown frame type "`
		if strings.HasPrefix(check, unknown) {
			if i := strings.LastIndex(check, `"; want `); i > len(unknown) {
				check = check[:len(unknown)] + check[i:]
			}
		}
		for _, bad := range fuzzWSInternals {
			if strings.Contains(strings.ToLower(check), bad) {
				return typ, detail, fmt.Errorf("detail leaks %q", bad)
			}
		}
	case "subscribed", "unsubscribed":
		var ids []int64
		if err := json.Unmarshal(obj["user_ids"], &ids); err != nil {
			return typ, "", fmt.Errorf("user_ids: %v", err)
		}
		for _, id := range ids {
			if id <= 0 {
				return typ, "", fmt.Errorf("user id %d", id)
			}
		}
	case "presence_update", "refreshed":
	default:
		return typ, "", fmt.Errorf("unknown frame type %q", typ)
	}
	return typ, detail, nil
}

// FuzzWebSocketFrame: whatever a client sends in one frame, the server
// answers with nothing, error frames or the answers of a valid frame
// (subscribed, unsubscribed, presence snapshots), never with internal text,
// and keeps the connection open; only a frame over the size limit closes
// it, with 1009. After each fuzzed frame a marker frame of a random unknown
// type is sent: its error answer shows that everything before it was
// handled.
func FuzzWebSocketFrame(f *testing.F) {
	env := fuzzWSStart(f)
	for _, s := range []string{
		`{"type":"heartbeat"}`,
		`{"type":"subscribe","user_ids":[1,2,3]}`,
		`{"type":"unsubscribe","user_ids":[2]}`,
		`{"type":"subscribe","user_ids":[4242]}`,
		`{"type":"unsubscribe","user_ids":[4242]}`,
		`{"type":"subscribe","user_ids":[]}`,
		`{"type":"subscribe"}`,
		`{"type":"subscribe","user_ids":null}`,
		`{"type":"subscribe","user_ids":"1,2"}`,
		`{"type":"subscribe","user_ids":["1"]}`,
		`{"type":"subscribe","user_ids":[-1,0]}`,
		`{"type":"subscribe","user_ids":[1.5,1e3,01]}`,
		`{"type":"subscribe","user_ids":[99999999999999999999]}`,
		`{"type":"subscribe","user_ids":[[1]]}`,
		`{"type":"subscribe","user_ids":[{"$gt":0}]}`,
		`{"type":"subscribe","type":"heartbeat"}`,
		`{"type":null}`,
		`{"type":1}`,
		`{"type":""}`,
		`{"type":"sub"}`,
		`{"type":"\u0000\ud800"}`,
		`{"type":"heartbeat"}{"type":"heartbeat"}`,
		`{"type":"heartbeat",}`,
		`  {"type":"heartbeat"}  `,
		`[{"type":"heartbeat"}]`,
		`"heartbeat"`,
		`null`,
		``,
		"\x00\xff\xfe",
		`{"type":"subscribe","user_ids":[` + strings.Repeat("7,", 1000) + `7]}`,
		`{"type":"subscribe","user_ids":[` + strings.Repeat("[", 3000) + `]}`,
		`{"type":"` + strings.Repeat("x", fuzzWSMaxFrame-11) + `"}`,
		`{"type":"` + strings.Repeat("x", fuzzWSMaxFrame) + `"}`,
	} {
		f.Add([]byte(s), false)
	}
	f.Add([]byte(`{"type":"heartbeat"}`), true)
	f.Add([]byte{0x89, 0x00}, true)

	f.Fuzz(func(t *testing.T, data []byte, binary bool) {
		c := env.connect(t)
		mt := fws.TextMessage
		if binary {
			mt = fws.BinaryMessage
		}
		_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		werr := c.WriteMessage(mt, data)

		if len(data) > fuzzWSMaxFrame {
			defer env.drop()
			for {
				rmt, msg, err := c.ReadMessage()
				if err != nil {
					var ce *fws.CloseError
					if !errors.As(err, &ce) || ce.Code != fws.CloseMessageTooBig {
						t.Fatalf("frame of %d bytes (limit %d): connection ended with %v, want close 1009 (write error %v)", len(data), fuzzWSMaxFrame, err, werr)
					}
					return
				}
				if _, _, err := fuzzWSCheckFrame(rmt, msg); err != nil {
					t.Fatalf("frame %q: %v", msg, err)
				}
			}
		}
		if werr != nil {
			env.drop()
			t.Fatalf("write %d bytes: %v", len(data), werr)
		}

		marker := fmt.Sprintf("fuzz-marker-%016x", rand.Uint64())
		if err := c.WriteMessage(fws.TextMessage, []byte(`{"type":"`+marker+`"}`)); err != nil {
			env.drop()
			t.Fatalf("write marker: %v", err)
		}
		for {
			rmt, msg, err := c.ReadMessage()
			if err != nil {
				env.drop()
				t.Fatalf("after a frame of %d bytes (%q): connection ended: %v", len(data), fuzzWSTruncate(data), err)
			}
			typ, detail, err := fuzzWSCheckFrame(rmt, msg)
			if err != nil {
				env.drop()
				t.Fatalf("after %q: server frame %q: %v", fuzzWSTruncate(data), msg, err)
			}
			if typ == "error" && strings.Contains(detail, marker) {
				return
			}
		}
	})
}

func fuzzWSTruncate(b []byte) []byte {
	if len(b) > 200 {
		return b[:200]
	}
	return b
}
