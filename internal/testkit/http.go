package testkit

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// Response is one HTTP answer, read whole.
type Response struct {
	Code   int
	Header http.Header
	Body   []byte
}

func (r *Response) String() string { return fmt.Sprintf("%d %s", r.Code, r.Body) }

// NewHTTPClient is the client of the REST helpers: keep-alive connections
// to a few nodes, a bounded dial, and no proxy from the environment. Every
// answer is checked against the OpenAPI document (see contract.go).
func NewHTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: checkedTransport(&http.Transport{
		MaxIdleConnsPerHost: 64, Proxy: nil, DialContext: (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
	})}
}

// Send performs one request with an optional bearer token ("" sends no
// Authorization header) and JSON body (nil sends none), and reads the
// answer whole. It is safe from any goroutine.
func Send(ctx context.Context, hc *http.Client, method, url, token string, body []byte) (*Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return nil, fmt.Errorf("new request %s %s: %w", method, url, err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	return ReadResponse(res)
}

// ReadResponse reads and closes res.
func ReadResponse(res *http.Response) (*Response, error) {
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	return &Response{Code: res.StatusCode, Header: res.Header, Body: b}, nil
}

// RawHTTP writes req as is on a fresh TCP connection to addr and reads one
// response. A connection the server closes without answering is an error.
func RawHTTP(addr, req string, timeout time.Duration) (*Response, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(conn, req); err != nil {
		return nil, err
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return nil, err
	}
	return ReadResponse(res)
}

// HTTPError is a non-2xx answer of a typed REST call.
type HTTPError struct {
	Code int
	Body string
}

func (e *HTTPError) Error() string { return fmt.Sprintf("HTTP %d %s", e.Code, e.Body) }

// IsHTTP reports whether err is an HTTP answer with the given code.
func IsHTTP(err error, code int) bool {
	var he *HTTPError
	return errors.As(err, &he) && he.Code == code
}

// ErrorCode is the HTTP status of a call's error: 200 for nil, the code of
// an HTTP answer, or 0 for a transport error (no answer); the second value
// is the body or the error text.
func ErrorCode(err error) (int, string) {
	if err == nil {
		return http.StatusOK, ""
	}
	var he *HTTPError
	if errors.As(err, &he) {
		return he.Code, he.Body
	}
	return 0, err.Error()
}

// ErrorKind classifies a client error for the counts tests report:
// "" (nil), wrong_user, http_<code>, timeout, refused, reset or other.
func ErrorKind(err error) string {
	var he *HTTPError
	var ne net.Error
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrWrongUser):
		return "wrong_user"
	case errors.As(err, &he):
		return fmt.Sprintf("http_%d", he.Code)
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case strings.Contains(err.Error(), "connection refused"):
		return "refused"
	case strings.Contains(err.Error(), "connection reset"), strings.Contains(err.Error(), "EOF"), strings.Contains(err.Error(), "broken pipe"):
		return "reset"
	}
	return "other"
}
