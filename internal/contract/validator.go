package contract

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
)

// Validator checks responses and frames against the embedded documents.
// It is safe for concurrent use.
type Validator struct {
	rest *openAPI
	ws   *asyncAPI
}

// Load parses and checks api/openapi.json and docs/asyncapi.yaml.
func Load() (*Validator, error) {
	rest, err := loadOpenAPI()
	if err != nil {
		return nil, fmt.Errorf("contract: %w", err)
	}
	ws, err := loadAsyncAPI()
	if err != nil {
		return nil, fmt.Errorf("contract: %w", err)
	}
	return &Validator{rest: rest, ws: ws}, nil
}

// CheckResponse validates a response of status, header and body to method
// on path (a request path, query included, e.g. "/users/presence?user_ids=1").
// An answer of 400 or more on a route the document does not describe must
// still be the error object; a success there wraps ErrUndocumented.
func (v *Validator) CheckResponse(method, path string, status int, header http.Header, body []byte) error {
	req, err := http.NewRequest(method, path, nil)
	if err != nil {
		return fmt.Errorf("contract: request %s %s: %w", method, path, err)
	}
	return v.rest.checkResponse(req, status, header, body)
}

// CheckHTTP validates resp to req; body is resp's body, already read.
func (v *Validator) CheckHTTP(req *http.Request, resp *http.Response, body []byte) error {
	r, err := http.NewRequest(req.Method, req.URL.RequestURI(), nil)
	if err != nil {
		return fmt.Errorf("contract: request %s %s: %w", req.Method, req.URL, err)
	}
	// The one request header the check reads: it tells a CORS preflight.
	if m := req.Header.Get("Access-Control-Request-Method"); m != "" {
		r.Header.Set("Access-Control-Request-Method", m)
	}
	return v.rest.checkResponse(r, resp.StatusCode, resp.Header, body)
}

// CheckFrame validates one server or client WebSocket frame: its type must
// be a message of docs/asyncapi.yaml and it must match that message's
// payload schema.
func (v *Validator) CheckFrame(frame []byte) error {
	return v.ws.checkFrame(frame)
}

// ServerFrameTypes lists the frame types the AsyncAPI document says the
// node sends, sorted.
func (v *Validator) ServerFrameTypes() []string { return slices.Clone(v.ws.send) }

// ClientFrameTypes lists the frame types the AsyncAPI document says the
// node receives, sorted.
func (v *Validator) ClientFrameTypes() []string { return slices.Clone(v.ws.receive) }

// Transport wraps next (nil: http.DefaultTransport) so every response is
// validated as it arrives; report receives each violation (a test passes
// t.Errorf-like functions). The body is read whole and handed on unread.
// WebSocket handshakes (101) are not checked.
func (v *Validator) Transport(next http.RoundTripper, report func(error)) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		resp, err := next.RoundTrip(req)
		if err != nil || resp.StatusCode == http.StatusSwitchingProtocols {
			return resp, err
		}
		body, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		if rerr != nil {
			return nil, fmt.Errorf("contract: read body of %s %s: %w", req.Method, req.URL.Path, rerr)
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		if cerr := v.CheckHTTP(req, resp, body); cerr != nil {
			report(cerr)
		}
		return resp, nil
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
