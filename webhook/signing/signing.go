// Package signing signs and verifies change-feed requests per the Standard
// Webhooks specification. It is separate from package webhook so that
// receivers (presencectl webhook-listen, tests) link no server code.
package signing

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Header names of the Standard Webhooks specification.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// secretPrefix marks a base64 secret, as the specification's libraries
// write it.
const secretPrefix = "whsec_"

// minSecretBytes is the shortest key accepted: HMAC-SHA256 with fewer bytes
// than this is guessable.
const minSecretBytes = 16

// ParseSecret turns the configured secret into the HMAC key:
// "whsec_<base64>" is decoded, anything else is used as it is.
func ParseSecret(s string) ([]byte, error) {
	var key []byte
	if rest, ok := strings.CutPrefix(s, secretPrefix); ok {
		b, err := base64.StdEncoding.DecodeString(rest)
		if err != nil {
			return nil, fmt.Errorf("webhook secret: %s<base64> does not decode: %w", secretPrefix, err)
		}
		key = b
	} else {
		key = []byte(s)
	}
	if len(key) < minSecretBytes {
		return nil, fmt.Errorf("webhook secret: %d bytes, want at least %d", len(key), minSecretBytes)
	}
	return key, nil
}

// Signer signs request bodies with one key.
type Signer struct{ key []byte }

// NewSigner parses secret (see ParseSecret).
func NewSigner(secret string) (*Signer, error) {
	key, err := ParseSecret(secret)
	if err != nil {
		return nil, err
	}
	return &Signer{key: key}, nil
}

// Sign returns the webhook-signature value of body sent as message id at
// ts: "v1," and the base64 HMAC-SHA256 of "id.timestamp.body".
func (s *Signer) Sign(id string, ts time.Time, body []byte) string {
	return "v1," + base64.StdEncoding.EncodeToString(s.mac(id, ts.Unix(), body))
}

func (s *Signer) mac(id string, unix int64, body []byte) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write(strconv.AppendInt(nil, unix, 10))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks the headers of a request against its body, as a receiver
// does: the timestamp within tolerance of now, and one of the
// space-separated v1 signatures matching. It is what the tests and the
// README's receiver use.
func (s *Signer) Verify(id, timestamp, signatures string, body []byte, now time.Time, tolerance time.Duration) error {
	if id == "" || timestamp == "" || signatures == "" {
		return fmt.Errorf("webhook: missing %s, %s or %s", HeaderID, HeaderTimestamp, HeaderSignature)
	}
	unix, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("webhook: bad %s %q", HeaderTimestamp, timestamp)
	}
	if d := now.Sub(time.Unix(unix, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("webhook: timestamp %d outside the tolerance of %s", unix, tolerance)
	}
	want := s.mac(id, unix, body)
	for _, sig := range strings.Fields(signatures) {
		v, b64, ok := strings.Cut(sig, ",")
		if !ok || v != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(b64)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return fmt.Errorf("webhook: no matching signature")
}
