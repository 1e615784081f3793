package testkit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresConn returns the server the PostgreSQL tests use
// (PRESENCE_TEST_POSTGRES: a postgres:// URL or a key=value string), or
// skips the test.
func PostgresConn(t testing.TB) string {
	t.Helper()
	u := os.Getenv("PRESENCE_TEST_POSTGRES")
	if u == "" {
		t.Skip(`PRESENCE_TEST_POSTGRES is not set: PostgreSQL tests skipped (eval "$(bash .ci/postgres.sh)" starts a local server and sets it)`)
	}
	return u
}

// PostgresURL is PostgresConn for the tests that start processes or put a
// proxy in front of the server: it skips the test unless the server is a
// postgres:// URL with one host.
func PostgresURL(t testing.TB) string {
	t.Helper()
	u := PostgresConn(t)
	parsePostgresURL(t, u)
	return u
}

// parsePostgresURL parses conn, or skips the test unless it is a
// postgres:// URL with one host.
func parsePostgresURL(t testing.TB, conn string) *url.URL {
	t.Helper()
	u, err := url.Parse(conn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Hostname() == "" || strings.Contains(u.Host, ",") {
		t.Skip("this test needs PRESENCE_TEST_POSTGRES as a postgres:// URL with one host")
	}
	return u
}

// SetURLParam returns the connection string with one parameter set, for
// a postgres:// URL or a key=value string.
func SetURLParam(t testing.TB, conn, key, value string) string {
	t.Helper()
	if !strings.HasPrefix(conn, "postgres://") && !strings.HasPrefix(conn, "postgresql://") {
		return conn + " " + key + "=" + value
	}
	u, err := url.Parse(conn)
	if err != nil {
		t.Fatalf("parse %q: %v", conn, err)
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}

// SetURLHost points the URL at hostport (a proxy); it skips the test
// unless conn is a postgres:// URL with one host.
func SetURLHost(t testing.TB, conn, hostport string) string {
	t.Helper()
	u := parsePostgresURL(t, conn)
	u.Host = hostport
	return u.String()
}

// URLHostPort is the host:port of the URL (port 5432 by default); it
// skips the test unless conn is a postgres:// URL with one host.
func URLHostPort(t testing.TB, conn string) string {
	t.Helper()
	u := parsePostgresURL(t, conn)
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
	name = "presence_test_" + hex.EncodeToString(b[:])
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
