package ws

import (
	"runtime"
	"time"
)

// Config holds the WebSocket settings of a node. A zero or negative field
// takes its value from DefaultConfig.
type Config struct {
	// MaxFrame is the largest client frame; a larger one closes the
	// session with 1009.
	MaxFrame int
	// MaxSubscriptions caps the users one session may subscribe to.
	MaxSubscriptions int
	// MaxSessionsPerUser caps one user's sessions on this node.
	MaxSessionsPerUser int
	// SendQueue is each session's outbound queue, in frames; a client that
	// lets it fill up is disconnected as a slow consumer.
	SendQueue int
	// PingInterval is how often the server pings; a client silent for
	// twice this long is dropped.
	PingInterval time.Duration
	// WriteTimeout bounds writing one batch of frames to a client.
	WriteTimeout time.Duration
	// Writers is the number of writer workers of the node: goroutines
	// that write the frames of every session whose socket takes them at
	// once (default GOMAXPROCS). A session whose socket would block is
	// written by a goroutine of its own until it has caught up.
	Writers int
	// SocketSendBuffer is each client connection's kernel send buffer. The
	// kernel would otherwise grow it to megabytes for a client that does
	// not read, before the session's own bounded queue ever fills: with a
	// small buffer a slow consumer is detected after a few dozen frames,
	// and the memory it pins stays small.
	SocketSendBuffer int
	// FrameRate and FrameBurst limit the frames one session sends; frames
	// beyond get an error frame and are dropped.
	FrameRate  float64
	FrameBurst int
	// AllowedOrigins, when set, refuses with 403 a handshake whose Origin
	// header is not listed ("*": any); a handshake without Origin (not
	// from a browser) is accepted. Empty: any origin.
	AllowedOrigins []string
}

// DefaultConfig returns the WebSocket settings a node runs with unless told
// otherwise.
func DefaultConfig() Config {
	return Config{
		MaxFrame:           64 << 10,
		MaxSubscriptions:   1000,
		MaxSessionsPerUser: 10,
		SendQueue:          256,
		PingInterval:       30 * time.Second,
		WriteTimeout:       10 * time.Second,
		Writers:            runtime.GOMAXPROCS(0),
		SocketSendBuffer:   64 << 10,
		FrameRate:          20,
		FrameBurst:         60,
	}
}

// withDefaults fills the zero or negative fields of c from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	setDefault(&c.MaxFrame, d.MaxFrame)
	setDefault(&c.MaxSubscriptions, d.MaxSubscriptions)
	setDefault(&c.MaxSessionsPerUser, d.MaxSessionsPerUser)
	setDefault(&c.SendQueue, d.SendQueue)
	setDefault(&c.PingInterval, d.PingInterval)
	setDefault(&c.WriteTimeout, d.WriteTimeout)
	setDefault(&c.Writers, d.Writers)
	setDefault(&c.SocketSendBuffer, d.SocketSendBuffer)
	setDefault(&c.FrameRate, d.FrameRate)
	setDefault(&c.FrameBurst, d.FrameBurst)
	return c
}

func setDefault[T int | float64 | time.Duration](p *T, v T) {
	if *p <= 0 {
		*p = v
	}
}
