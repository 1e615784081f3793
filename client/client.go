package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Client calls the REST API of a presence cluster as one user (the token's
// subject). It is safe for concurrent use; a backend acting for many users
// makes one Client per user, all sharing one HTTPClient.
type Client struct {
	cfg  Config
	base string // BaseURL without a trailing slash
}

// New checks cfg and returns a Client; zero fields of cfg get the values of
// DefaultConfig.
func New(cfg Config) (*Client, error) {
	cfg = cfg.withDefaults()
	u, err := url.Parse(cfg.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("presence client: base URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("presence client: base URL %q: want http(s)://host[:port]", cfg.BaseURL)
	}
	for _, s := range cfg.Subscriber.URLs {
		if _, err := wsEndpoint(s); err != nil {
			return nil, err
		}
	}
	return &Client{cfg: cfg, base: strings.TrimRight(cfg.BaseURL, "/")}, nil
}

// token is the bearer token to send now ("" for none).
func (c *Client) token(ctx context.Context) (string, error) {
	return tokenOf(ctx, c.cfg)
}

func tokenOf(ctx context.Context, cfg Config) (string, error) {
	if cfg.TokenSource == nil {
		return cfg.Token, nil
	}
	tok, err := cfg.TokenSource(ctx)
	if err != nil {
		return "", fmt.Errorf("presence client: token: %w", err)
	}
	return tok, nil
}

// GetJSON sends an authenticated GET of path (with its query) and decodes
// a 2xx answer into out; out may be a *json.RawMessage to keep the body as
// it came. It is the way to endpoints this package has no method for.
func (c *Client) GetJSON(ctx context.Context, path string, out any) error {
	return c.do(ctx, http.MethodGet, path, nil, out)
}

// do sends one request with in (when not nil) as its JSON body and decodes
// a 2xx answer into out (when not nil). Any other answer is an *Error.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	err := c.roundTrip(ctx, method, path, in, out)
	if err != nil {
		return fmt.Errorf("presence: %s %s: %w", method, path, err)
	}
	return nil
}

// call is do for an answer of type T, which it returns.
func call[T any](ctx context.Context, c *Client, method, path string, in any) (T, error) {
	var out T
	err := c.do(ctx, method, path, in, &out)
	return out, err
}

func (c *Client) roundTrip(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	tok, err := c.token(ctx)
	if err != nil {
		return err
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, c.cfg.MaxResponseBytes+1))
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if int64(len(data)) > c.cfg.MaxResponseBytes {
		return fmt.Errorf("answer larger than %d bytes", c.cfg.MaxResponseBytes)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return newError(resp.StatusCode, resp.Header, data)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}

// errNoIDs refuses a batch read of nobody before it reaches the server.
var errNoIDs = errors.New("presence: PresenceBatch: no user ids")
