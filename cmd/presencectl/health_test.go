package main

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestHealth(t *testing.T) {
	var ready atomic.Bool
	ready.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/slow":
			time.Sleep(time.Second)
		case ready.Load():
			w.Write([]byte(`{"status":"ready"}`))
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"detail":"Draining"}`))
		}
	}))
	defer srv.Close()

	var out, errb bytes.Buffer
	if err := runHealth([]string{"--url", srv.URL + "/readyz"}, &out, &errb); err != nil {
		t.Fatalf("ready node: %v", err)
	}
	if !strings.Contains(out.String(), "200") {
		t.Errorf("stdout %q, want the status", out.String())
	}
	out.Reset()
	if err := runHealth([]string{"-q", "--url", srv.URL + "/readyz"}, &out, &errb); err != nil || out.Len() != 0 {
		t.Errorf("-q: err %v, stdout %q", err, out.String())
	}

	ready.Store(false)
	err := runHealth([]string{"--url", srv.URL + "/readyz"}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "Draining") {
		t.Errorf("draining node: err %v, want the 503 and its body", err)
	}
	if code := run([]string{"health", "--url", srv.URL + "/readyz"}, &out, &errb); code != 1 {
		t.Errorf("presencectl health on a draining node: exit code %d, want 1 (unhealthy)", code)
	}
	ready.Store(true)
	if code := run([]string{"health", "-q", "--url", srv.URL + "/readyz"}, &out, &errb); code != 0 {
		t.Errorf("presencectl health on a ready node: exit code %d, want 0", code)
	}
	ready.Store(false)

	start := time.Now()
	if err := runHealth([]string{"--timeout", "200ms", "--url", srv.URL + "/slow"}, &out, &errb); err == nil {
		t.Error("slow endpoint: want a timeout error")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("timeout took %v", d)
	}

	if err := runHealth([]string{"--url", "http://127.0.0.1:1/readyz"}, &out, &errb); err == nil {
		t.Error("nothing listening: want an error")
	}
	if err := runHealth([]string{"stray"}, &out, &errb); !errors.Is(err, errUsage) {
		t.Errorf("stray argument: %v, want a usage error", err)
	}
}
