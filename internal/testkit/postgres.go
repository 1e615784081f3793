package testkit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresURL returns the server the PostgreSQL tests use
// (PRESENCE_TEST_POSTGRES), or skips the test.
func PostgresURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("PRESENCE_TEST_POSTGRES")
	if u == "" {
		t.Skip(`PRESENCE_TEST_POSTGRES is not set: cluster-on-PostgreSQL tests skipped (eval "$(bash .ci/postgres.sh)" starts a local server and sets it)`)
	}
	pu, err := url.Parse(u)
	if err != nil || (pu.Scheme != "postgres" && pu.Scheme != "postgresql") || pu.Hostname() == "" {
		t.Skip("PRESENCE_TEST_POSTGRES must be a postgres:// URL with a host for the cluster-on-PostgreSQL tests")
	}
	return u
}

// SetURLParam returns the URL with one query parameter set.
func SetURLParam(t testing.TB, conn, key, value string) string {
	t.Helper()
	u, err := url.Parse(conn)
	if err != nil {
		t.Fatalf("parse %q: %v", conn, err)
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}

// SetURLHost points the URL at hostport (a proxy).
func SetURLHost(t testing.TB, conn, hostport string) string {
	t.Helper()
	u, err := url.Parse(conn)
	if err != nil {
		t.Fatalf("parse %q: %v", conn, err)
	}
	u.Host = hostport
	return u.String()
}

// URLHostPort is the host:port of the URL (port 5432 by default).
func URLHostPort(t testing.TB, conn string) string {
	t.Helper()
	u, err := url.Parse(conn)
	if err != nil {
		t.Fatalf("parse %q: %v", conn, err)
	}
	port := u.Port()
	if port == "" {
		port = "5432"
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// PgExec runs statements on conn.
func PgExec(conn string, sql ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, conn)
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer c.Close(context.Background())
	for _, s := range sql {
		if _, err := c.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

// PgSchema creates a uniquely named schema, dropped when the test ends
// (after processes started later are killed), and returns the URL whose
// sessions use it.
func PgSchema(t testing.TB, base string) (conn, name string) {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name = "presence_e2e_" + hex.EncodeToString(b[:])
	ident := pgx.Identifier{name}.Sanitize()
	if err := PgExec(base, "CREATE SCHEMA "+ident); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := PgExec(base, "DROP SCHEMA "+ident+" CASCADE"); err != nil {
			t.Errorf("drop schema: %v", err)
		}
	})
	return SetURLParam(t, base, "search_path", name), name
}
