package webhook

import (
	"crypto/rand"
	"encoding/base64"
)

// newMessageID returns a fresh webhook-id: "msg_" and 16 random bytes.
func newMessageID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "msg_" + base64.RawURLEncoding.EncodeToString(b[:])
}
