// Package loadgen is the load generator behind presencectl bench: open-loop
// REST traffic (heartbeats, status changes, single and batch reads) paced
// over a ramp, WebSocket sessions held by worker processes that time every
// change from the PUT to each subscriber's frame, and the nodes' memory,
// CPU and actor latency read before and after. Run drives one run and
// returns its Report; RunWorker is the worker process's side.
package loadgen

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"time"
)

// Bounds that keep every run finite whatever the configuration says.
const (
	MaxDuration   = 10 * time.Minute
	MaxRamp       = 5 * time.Minute
	MaxUsers      = 1_000_000
	MaxSessions   = 200_000
	MaxWorkers    = 64
	settleTimeout = 30 * time.Second // sessions still connecting after the ramp
	perWorker     = 5000             // sessions one worker process holds by default
)

// Config is one run of the generator. The field comments name the
// presencectl bench flag each field is set from; validation messages use
// those names, since that is where an operator can fix them.
type Config struct {
	// URLs are the nodes (--url, loopback http:// only); sessions and
	// requests are spread over them round-robin.
	URLs []string
	// Secret, Issuer and Audience mint the users' HS256 tokens.
	Secret   []byte
	Issuer   string
	Audience string
	// Topology is who subscribes to whom (--users, --user-base,
	// --sessions, --contacts, --hot). Sessions < 0 means every user.
	Topology Topology
	// Rates are per second, all users together (--heartbeat-rate,
	// --change-rate, --read-rate, --batch-rate); BatchSize ids per batch
	// read (--batch-size, at most 50).
	HeartbeatRate float64
	ChangeRate    float64
	ReadRate      float64
	BatchRate     float64
	BatchSize     int
	// Ramp: sessions open and REST rates rise linearly; changes start
	// after it. Duration is the steady phase; Grace the wait for
	// deliveries after the last change; Progress the progress line
	// interval.
	Duration time.Duration
	Ramp     time.Duration
	Grace    time.Duration
	Progress time.Duration
	// Workers are the processes holding the sessions (--workers): -1 one
	// per 5000 sessions, 0 in this process.
	Workers int
	// SourceIPs spreads sessions over that many source addresses
	// 127.0.0.10.. (--source-ips; 0: two per worker).
	SourceIPs int
	// Conns are REST keep-alive connections per node (--conns).
	Conns int
	// HTTPTimeout bounds each REST request (--http-timeout).
	HTTPTimeout time.Duration
	// PprofURLs and PIDs are per node, in URLs order (--pprof-url, --pid):
	// memory after a forced GC, RSS and CPU from /proc.
	PprofURLs []string
	PIDs      []int
	// DialConcurrency bounds WebSocket handshakes in flight per worker
	// (--dial-concurrency).
	DialConcurrency int
	// NoReconnect keeps sessions the server closes with 1012 or 1013
	// closed (--no-reconnect).
	NoReconnect bool
	// Prewarm heartbeats every session user once before the first memory
	// reading, so the per-session figure excludes the user's actor
	// (--prewarm).
	Prewarm bool
	// Storm, when set, runs the reconnect-storm scenario (--scenario
	// storm): one node drains during the steady phase.
	Storm *StormConfig
	// WorkerArgs are the arguments that start this binary in worker mode
	// (RunWorker on stdin/stdout); the executable is os.Executable().
	WorkerArgs []string
	// Log receives the progress lines and diagnostics.
	Log io.Writer
}

// DefaultConfig returns the configuration presencectl bench starts from:
// every flag's default.
func DefaultConfig() Config {
	return Config{
		URLs:            []string{"http://127.0.0.1:8000"},
		Topology:        Topology{Users: 1000, UserBase: 1_000_000, Sessions: -1, Contacts: 10},
		HeartbeatRate:   100,
		ChangeRate:      10,
		BatchSize:       50,
		Duration:        20 * time.Second,
		Ramp:            5 * time.Second,
		Grace:           2 * time.Second,
		Progress:        5 * time.Second,
		Workers:         -1,
		Conns:           64,
		HTTPTimeout:     5 * time.Second,
		DialConcurrency: 64,
		WorkerArgs:      []string{"bench", "--worker"},
		Log:             os.Stderr,
	}
}

// Validate reports the first setting out of range.
func (c Config) Validate() error {
	if err := c.validateTargets(); err != nil {
		return err
	}
	if err := c.validateTopology(); err != nil {
		return err
	}
	if err := c.validateLoad(); err != nil {
		return err
	}
	if c.Workers > MaxWorkers { // the automatic count stays below it
		return fmt.Errorf("--workers must be at most %d", MaxWorkers)
	}
	return c.validateStorm()
}

func (c Config) validateTargets() error {
	for _, u := range c.URLs {
		if err := RequireLoopbackURL(u); err != nil {
			return fmt.Errorf("--url %s: %w", u, err)
		}
	}
	for _, u := range c.PprofURLs {
		if err := RequireLoopbackURL(u); err != nil {
			return fmt.Errorf("--pprof-url %s: %w", u, err)
		}
	}
	for _, p := range c.PIDs {
		if p <= 0 {
			return fmt.Errorf("--pid %d: want a process id", p)
		}
	}
	if len(c.URLs) == 0 {
		return errors.New("--url is required")
	}
	return nil
}

func (c Config) validateTopology() error {
	t := c.Topology.resolved()
	switch {
	case t.Users < 1 || t.Users > MaxUsers:
		return fmt.Errorf("--users must be 1..%d", MaxUsers)
	case t.UserBase < 1 || t.UserBase > math.MaxInt64/2:
		return errors.New("--user-base must be positive")
	case t.Sessions > t.Users || t.Sessions > MaxSessions:
		return fmt.Errorf("--sessions must be at most --users and %d", MaxSessions)
	case t.Contacts < 0 || t.Contacts >= t.Users && t.Users > 1:
		return errors.New("--contacts must be 0..users-1")
	case t.Hot < 0 || t.Hot > t.Users:
		return errors.New("--hot must be 0..users")
	case t.HiddenHot && t.Hot == 0:
		return errors.New("--hot-hidden needs --hot")
	case t.Hot+t.Contacts > 1000:
		return errors.New("--hot + --contacts must stay within the server's subscription limit (1000 by default)")
	}
	return nil
}

func (c Config) validateLoad() error {
	switch {
	case c.HeartbeatRate < 0 || c.ChangeRate < 0 || c.ReadRate < 0 || c.BatchRate < 0:
		return errors.New("rates must not be negative")
	case c.BatchSize < 1 || c.BatchSize > 50:
		return errors.New("--batch-size must be 1..50")
	case c.Duration <= 0 || c.Duration > MaxDuration:
		return fmt.Errorf("--duration must be in (0, %s]", MaxDuration)
	case c.Ramp < 0 || c.Ramp > MaxRamp:
		return fmt.Errorf("--ramp must be in [0, %s]", MaxRamp)
	case c.Grace < 0 || c.Grace > time.Minute:
		return errors.New("--grace must be in [0, 1m]")
	case c.Progress < 100*time.Millisecond:
		return errors.New("--progress must be at least 100ms")
	case c.Conns < 1 || c.Conns > 4096:
		return errors.New("--conns must be 1..4096")
	case c.HTTPTimeout <= 0 || c.HTTPTimeout > time.Minute:
		return errors.New("--http-timeout must be in (0, 1m]")
	case c.DialConcurrency < 1 || c.DialConcurrency > 1024:
		return errors.New("--dial-concurrency must be 1..1024")
	case c.SourceIPs < 0 || c.SourceIPs > 200:
		return errors.New("--source-ips must be 0..200")
	}
	return nil
}

// workerCount resolves Workers: the number of worker processes (or
// in-process workers) and whether they run in this process.
func (c Config) workerCount() (n int, inProcess bool) {
	sessions := c.Topology.resolved().Sessions
	n = c.Workers
	if n < 0 {
		n = (sessions + perWorker - 1) / perWorker
	}
	if n == 0 {
		inProcess, n = true, 1
	}
	if sessions == 0 {
		n = 0
	}
	return n, inProcess
}

// plan is a validated Config with every automatic setting resolved: what
// a run actually does.
type plan struct {
	Config
	workers   int
	inProcess bool
	sourceIPs []string
}

func (c Config) plan() plan {
	p := plan{Config: c}
	p.Topology = c.Topology.resolved()
	p.workers, p.inProcess = c.workerCount()
	nips := c.SourceIPs
	if nips == 0 {
		nips = 2 * max(p.workers, 1)
	}
	for i := 0; i < nips; i++ {
		p.sourceIPs = append(p.sourceIPs, fmt.Sprintf("127.0.0.%d", 10+i))
	}
	if p.Log == nil {
		p.Log = io.Discard
	}
	return p
}
