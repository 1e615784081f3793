// Package wire declares the JSON bodies and WebSocket frames of the presence
// API once, for the server, the Go client and the tests, together with the
// hand-written encoders the server's hot paths use.
//
// The struct types are for decoding (and for encoding off the hot path with
// encoding/json); the Append functions write the same documents into a
// caller's buffer without allocating. Both describe one shape: the
// round-trip tests decode every encoder's output into the matching type.
package wire
