package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/presence-cluster/presence/api/auth"
)

// clearEnv keeps the developer's own PRESENCE_* settings out of the tests.
func clearEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{envDataDir, envJWTSecret, envIssuer, envAudience} {
		t.Setenv(k, "")
	}
}

func verify(t *testing.T, cfg auth.Config, token string) auth.Identity {
	t.Helper()
	v, err := auth.NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	id, err := v.Verify(token)
	if err != nil {
		t.Fatalf("the daemon's verifier refuses the token: %v", err)
	}
	return id
}

func payload(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", token)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestTokenFromDataDir(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	secret, err := auth.LoadOrCreateSecret(dir) // what presenced does at first start
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	err = runToken([]string{"--user", "42", "--username", "alice", "--admin", "--ttl", "10m", "--data-dir", dir}, &out, &errOut)
	if err != nil {
		t.Fatalf("runToken: %v (stderr %q)", err, errOut.String())
	}
	if !strings.HasSuffix(out.String(), "\n") || strings.Count(out.String(), "\n") != 1 {
		t.Fatalf("stdout %q: want exactly the token and a newline", out.String())
	}
	token := strings.TrimSpace(out.String())
	id := verify(t, auth.Config{Secret: secret}, token)
	if want := (auth.Identity{UserID: 42, Username: "alice", Admin: true}); id != want {
		t.Fatalf("identity %+v, want %+v", id, want)
	}
	c := payload(t, token)
	if exp, iat := c["exp"].(float64), c["iat"].(float64); exp-iat != 600 {
		t.Fatalf("exp-iat = %v, want 600 (--ttl 10m)", exp-iat)
	}
}

func TestTokenSecretPrecedence(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	fileSecret, err := auth.LoadOrCreateSecret(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(envDataDir, dir) // the default for --data-dir

	mint := func(args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		if err := runToken(append([]string{"--user", "7", "--username", "bob"}, args...), &out, &errOut); err != nil {
			t.Fatalf("runToken %v: %v (stderr %q)", args, err, errOut.String())
		}
		return strings.TrimSpace(out.String())
	}

	// File, found through PRESENCE_DATA_DIR.
	id := verify(t, auth.Config{Secret: fileSecret}, mint())
	if id.UserID != 7 || id.Username != "bob" || id.Admin {
		t.Fatalf("identity %+v", id)
	}
	// Environment beats the file.
	t.Setenv(envJWTSecret, "env-secret-0123456789abcdef0123456789")
	verify(t, auth.Config{Secret: []byte("env-secret-0123456789abcdef0123456789")}, mint())
	// The flag beats both.
	verify(t, auth.Config{Secret: []byte("flag-secret-0123456789abcdef012345678")}, mint("--secret", "flag-secret-0123456789abcdef012345678"))
}

func TestTokenIssuerAudience(t *testing.T) {
	clearEnv(t)
	cfg := auth.Config{Secret: []byte("s3cret-s3cret-s3cret-s3cret-s3cret"), Issuer: "presenced", Audience: "presence"}
	var out, errOut bytes.Buffer
	if err := runToken([]string{"--user", "1", "--username", "x", "--secret", string(cfg.Secret), "--issuer", "presenced", "--audience", "presence"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	verify(t, cfg, strings.TrimSpace(out.String()))

	// From the environment, like the daemon's settings.
	t.Setenv(envIssuer, "presenced")
	t.Setenv(envAudience, "presence")
	out.Reset()
	if err := runToken([]string{"--user", "1", "--username", "x", "--secret", string(cfg.Secret)}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	verify(t, cfg, strings.TrimSpace(out.String()))
}

func TestTokenWithoutSecretFile(t *testing.T) {
	clearEnv(t)
	dir := filepath.Join(t.TempDir(), "data")
	var out, errOut bytes.Buffer
	code := run([]string{"token", "--user", "1", "--username", "x", "--data-dir", dir}, &out, &errOut)
	if code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
	if out.Len() != 0 {
		t.Fatalf("stdout %q, want nothing", out.String())
	}
	msg := errOut.String()
	for _, want := range []string{"presenced", "--secret", envJWTSecret, filepath.Join(dir, auth.SecretFileName)} {
		if !strings.Contains(msg, want) {
			t.Errorf("stderr %q does not mention %q", msg, want)
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("presencectl created the data dir (stat: %v)", err)
	}
}

func TestExitCodes(t *testing.T) {
	clearEnv(t)
	secret := []string{"--secret", "some-secret-0123456789abcdef0123456"}
	tests := []struct {
		name      string
		args      []string
		code      int
		stdout    bool   // something must be printed on stdout
		stderrHas string // substring of stderr
		stdoutHas string
	}{
		{name: "no command", args: nil, code: 2, stderrHas: "Usage: presencectl"},
		{name: "unknown command", args: []string{"frobnicate"}, code: 2, stderrHas: `unknown command "frobnicate"`},
		{name: "help", args: []string{"help"}, code: 0, stdoutHas: "token"},
		{name: "--help", args: []string{"--help"}, code: 0, stdoutHas: "Commands:"},
		{name: "token -h", args: []string{"token", "-h"}, code: 0, stderrHas: "-username"},
		{name: "token ok", args: append([]string{"token", "--user", "3", "--username", "c"}, secret...), code: 0, stdout: true},
		{name: "missing --user", args: append([]string{"token", "--username", "c"}, secret...), code: 2, stderrHas: "--user must be"},
		{name: "negative --user", args: append([]string{"token", "--user", "-3", "--username", "c"}, secret...), code: 2, stderrHas: "--user must be"},
		{name: "non-numeric --user", args: append([]string{"token", "--user", "abc", "--username", "c"}, secret...), code: 2, stderrHas: "invalid value"},
		{name: "missing --username", args: append([]string{"token", "--user", "3"}, secret...), code: 2, stderrHas: "--username is required"},
		{name: "bad --ttl", args: append([]string{"token", "--user", "3", "--username", "c", "--ttl", "soon"}, secret...), code: 2, stderrHas: "invalid value"},
		{name: "zero --ttl", args: append([]string{"token", "--user", "3", "--username", "c", "--ttl", "0s"}, secret...), code: 2, stderrHas: "--ttl must be positive"},
		{name: "unknown flag", args: []string{"token", "--nope"}, code: 2, stderrHas: "not defined"},
		{name: "stray argument", args: append([]string{"token", "--user", "3", "--username", "c", "extra"}, secret...), code: 2, stderrHas: `unexpected argument "extra"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(tc.args, &out, &errOut)
			if code != tc.code {
				t.Fatalf("exit code %d, want %d (stderr %q)", code, tc.code, errOut.String())
			}
			if tc.stdout && out.Len() == 0 {
				t.Fatal("nothing on stdout")
			}
			if tc.code != 0 && out.Len() != 0 {
				t.Fatalf("stdout %q on failure", out.String())
			}
			if !strings.Contains(errOut.String(), tc.stderrHas) {
				t.Fatalf("stderr %q does not mention %q", errOut.String(), tc.stderrHas)
			}
			if !strings.Contains(out.String(), tc.stdoutHas) {
				t.Fatalf("stdout %q does not mention %q", out.String(), tc.stdoutHas)
			}
		})
	}
}
