package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Error is an answer other than 2xx: the HTTP status and the server's
// {"detail": ...}. A WebSocket handshake the server refused is one too.
type Error struct {
	StatusCode int
	// Detail is the body's detail, or the start of the body when it is not
	// the API's error body (a proxy's answer, say).
	Detail string
	// RetryAfter is the Retry-After of a 429 or 503, zero when absent.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%d %s", e.StatusCode, http.StatusText(e.StatusCode))
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// StatusCode is the HTTP status of err's *Error, or 0 when err is not an
// answer of the server (a network error, a cancelled context).
func StatusCode(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.StatusCode
	}
	return 0
}

// IsNotFound reports a 404: the user has no record yet.
func IsNotFound(err error) bool { return StatusCode(err) == http.StatusNotFound }

// IsUnauthorized reports a 401: the token is missing, expired or refused.
func IsUnauthorized(err error) bool { return StatusCode(err) == http.StatusUnauthorized }

// IsForbidden reports a 403: an admin call without admin rights.
func IsForbidden(err error) bool { return StatusCode(err) == http.StatusForbidden }

// IsBadRequest reports a 400 or 422: the request itself was wrong, and
// sending it again will not help.
func IsBadRequest(err error) bool {
	c := StatusCode(err)
	return c == http.StatusBadRequest || c == http.StatusUnprocessableEntity
}

// IsRateLimited reports a 429; see Error.RetryAfter.
func IsRateLimited(err error) bool { return StatusCode(err) == http.StatusTooManyRequests }

// IsUnavailable reports a 503: the node is draining or its store is down;
// nothing was changed, and a retry may succeed.
func IsUnavailable(err error) bool { return StatusCode(err) == http.StatusServiceUnavailable }

// maxDetail bounds the Detail taken from a body that is not the API's.
const maxDetail = 512

// newError builds the *Error of an answer with status code, header h and
// body.
func newError(code int, h http.Header, body []byte) *Error {
	e := &Error{StatusCode: code, RetryAfter: retryAfter(h.Get("Retry-After"))}
	var eb struct {
		Detail *string `json:"detail"`
	}
	if json.Unmarshal(body, &eb) == nil && eb.Detail != nil {
		e.Detail = *eb.Detail
		return e
	}
	d := strings.TrimSpace(string(body))
	if len(d) > maxDetail {
		d = d[:maxDetail] + "..."
	}
	e.Detail = d
	return e
}

// retryAfter parses a Retry-After of delay-seconds or an HTTP date.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}
