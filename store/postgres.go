package store

import (
	"cmp"
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/presence-cluster/presence/messages"
)

// Defaults for PostgresOptions fields left zero.
const (
	// DefaultPostgresMaxConns bounds the connections of one node. Every
	// statement is a single short round trip, so a few connections serve
	// thousands of user actors; the cluster's total is this times the nodes,
	// which must stay under the server's max_connections.
	DefaultPostgresMaxConns = 16
	// DefaultPostgresConnectTimeout bounds one connection attempt, so an
	// unreachable server fails a request (503) instead of hanging it.
	DefaultPostgresConnectTimeout = 5 * time.Second
)

// Startup retry backoff: quick at first for a server that is just coming
// up, then capped so a long wait does not hammer it.
const (
	startupBackoffMin = 100 * time.Millisecond
	startupBackoffMax = 5 * time.Second
)

// scanPageSize is how many live records ScanLive reads per query. Each page
// is read completely and its connection released before fn sees a record.
const scanPageSize = 1000

// migrationLockKey is the pg_advisory_xact_lock key that serialises schema
// migrations across nodes starting at once (an arbitrary constant: the
// first 8 bytes of "presence" read as a big-endian integer).
const migrationLockKey int64 = 0x70726573656e6365

//go:embed migrations/*.sql
var migrationFiles embed.FS

// PostgresOptions tunes OpenPostgres. The zero value is a usable setting
// for tests and tools; the daemon sets StartupWait and Logger.
type PostgresOptions struct {
	// MaxConns caps the pool. Zero or negative means DefaultPostgresMaxConns;
	// a pool_max_conns parameter in the URL is overridden only when set here.
	MaxConns int32
	// ConnectTimeout bounds one connection attempt. Zero keeps the URL's
	// connect_timeout, or DefaultPostgresConnectTimeout if it has none.
	ConnectTimeout time.Duration
	// StartupWait is how long OpenPostgres keeps retrying, with backoff,
	// while the server cannot be reached (a database that starts alongside
	// the service). Zero means a single try. Errors that waiting cannot fix
	// (bad URL, authentication, missing database, a failed migration) are
	// returned at once.
	StartupWait time.Duration
	// Logger receives startup retries and applied migrations; nil discards.
	Logger *slog.Logger
}

// Postgres is a Store in a PostgreSQL table, shared by every node of a
// cluster. Every write is a single statement, so a failure never leaves a
// half-written record; compare-and-set is the statement's own WHERE clause.
type Postgres struct {
	pool   *pgxpool.Pool
	target string // host:port/database, for messages; never the password
	closed atomic.Bool
}

var _ Store = (*Postgres)(nil)

// OpenPostgres connects to the database at url (a postgres:// URL or a
// key=value connection string, as libpq and pgx accept), applies the
// embedded schema migrations and returns the store. If the server cannot
// be reached within opts.StartupWait the error wraps ErrUnavailable.
func OpenPostgres(ctx context.Context, url string, opts PostgresOptions) (*Postgres, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgconn redacts the password in its parse errors.
		return nil, fmt.Errorf("store: open postgres: %w", err)
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	} else if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = DefaultPostgresMaxConns
	}
	switch {
	case opts.ConnectTimeout > 0:
		cfg.ConnConfig.ConnectTimeout = opts.ConnectTimeout
	case cfg.ConnConfig.ConnectTimeout <= 0:
		cfg.ConnConfig.ConnectTimeout = DefaultPostgresConnectTimeout
	}
	target := fmt.Sprintf("%s/%s", net.JoinHostPort(cfg.ConnConfig.Host, strconv.Itoa(int(cfg.ConnConfig.Port))),
		cfg.ConnConfig.Database)

	migrations, err := loadMigrations()
	if err != nil {
		return nil, fmt.Errorf("store: open postgres %s: %w", target, err)
	}

	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, wrapPgErr(err, "open postgres %s", target)
	}
	p := &Postgres{pool: pool, target: target}

	deadline := time.Now().Add(opts.StartupWait)
	backoff := startupBackoffMin
	for attempt := 1; ; attempt++ {
		err = p.start(ctx, migrations, logger)
		if err == nil {
			if attempt > 1 {
				logger.Info("postgres store ready", "target", target, "attempts", attempt)
			}
			return p, nil
		}
		remaining := time.Until(deadline)
		if !errors.Is(err, ErrUnavailable) || !startupRetryable(err) || remaining <= 0 || ctx.Err() != nil {
			pool.Close()
			if attempt > 1 {
				return nil, fmt.Errorf("%w (gave up after %d attempts in %v)", err, attempt, opts.StartupWait)
			}
			return nil, err
		}
		wait := min(backoff, remaining)
		logger.Warn("postgres store not reachable yet, retrying",
			"target", target, "attempt", attempt, "retry_in", wait, "err", err)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			pool.Close()
			return nil, fmt.Errorf("%w (startup wait interrupted: %w)", err, ctx.Err())
		}
		backoff = min(2*backoff, startupBackoffMax)
	}
}

// start checks the server answers and brings the schema up to date.
func (p *Postgres) start(ctx context.Context, migrations []migration, logger *slog.Logger) error {
	if err := p.pool.Ping(ctx); err != nil {
		return wrapPgErr(err, "open postgres %s", p.target)
	}
	if err := p.migrate(ctx, migrations, logger); err != nil {
		return wrapPgErr(err, "open postgres %s: migrate schema", p.target)
	}
	return nil
}

// migration is one embedded schema change, named NNNN_description.sql.
type migration struct {
	version int
	name    string
	sql     string
}

func loadMigrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("read embedded migrations: %w", err)
	}
	var ms []migration
	seen := map[int]string{}
	for _, e := range entries {
		name := e.Name()
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must be NNNN_description.sql with NNNN > 0", name)
		}
		if other, dup := seen[v]; dup {
			return nil, fmt.Errorf("migrations %s and %s share version %d", other, name, v)
		}
		seen[v] = name
		body, err := migrationFiles.ReadFile(path.Join("migrations", name))
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", name, err)
		}
		ms = append(ms, migration{version: v, name: name, sql: string(body)})
	}
	slices.SortFunc(ms, func(a, b migration) int { return cmp.Compare(a.version, b.version) })
	return ms, nil
}

// migrate applies the migrations not yet recorded, all in one transaction
// that holds an advisory lock: nodes starting together take turns, the
// first applies everything and the others find nothing left to do. A failed
// migration rolls back whole, so the schema is never half changed.
func (p *Postgres) migrate(ctx context.Context, migrations []migration, logger *slog.Logger) error {
	return pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrationLockKey); err != nil {
			return fmt.Errorf("take migration lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS presence_schema_migrations (
	version    integer     PRIMARY KEY,
	applied_at timestamptz NOT NULL DEFAULT now()
)`); err != nil {
			return fmt.Errorf("create presence_schema_migrations: %w", err)
		}
		rows, err := tx.Query(ctx, "SELECT version FROM presence_schema_migrations")
		if err != nil {
			return fmt.Errorf("read applied migrations: %w", err)
		}
		applied, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil {
			return fmt.Errorf("read applied migrations: %w", err)
		}
		done := map[int]bool{}
		for _, v := range applied {
			done[int(v)] = true
		}
		for _, m := range migrations {
			if done[m.version] {
				continue
			}
			// No arguments: the simple protocol, which runs a file of
			// several statements.
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return fmt.Errorf("apply migration %s: %w", m.name, err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO presence_schema_migrations (version) VALUES ($1)", m.version); err != nil {
				return fmt.Errorf("record migration %s: %w", m.name, err)
			}
			logger.Info("postgres schema migration applied", "target", p.target, "migration", m.name)
		}
		return nil
	})
}

// Ping reports whether the database answers, for readiness checks. An
// unreachable server gives an error wrapping ErrUnavailable.
func (p *Postgres) Ping(ctx context.Context) error {
	if p.closed.Load() {
		return errClosed
	}
	if err := p.pool.Ping(ctx); err != nil {
		return wrapPgErr(err, "ping postgres %s", p.target)
	}
	return nil
}

const userColumns = "user_id, username, is_online, is_busy, busy_until, last_seen, created_at, updated_at, version, sessions_held, appear_offline, " +
	"visibility_presence, visibility_last_seen, visibility_allow"

const loadSQL = "SELECT " + userColumns + " FROM presence_users WHERE user_id = $1"

// Load returns the user's record, or ErrNotFound.
func (p *Postgres) Load(ctx context.Context, userID int64) (*messages.UserState, error) {
	if p.closed.Load() {
		return nil, errClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("store: load user %d: %w", userID, err)
	}
	st, err := scanUser(p.pool.QueryRow(ctx, loadSQL, userID))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, wrapPgErr(err, "load user %d", userID)
	}
	return st, nil
}

// scanUser reads one row of userColumns.
func scanUser(row pgx.Row) (*messages.UserState, error) {
	st := new(messages.UserState)
	var version int64
	var visPresence, visLastSeen int16
	var allow []int64
	if err := row.Scan(&st.UserId, &st.Username, &st.IsOnline, &st.IsBusy, &st.BusyUntil,
		&st.LastSeen, &st.CreatedAt, &st.UpdatedAt, &version, &st.SessionsHeld, &st.AppearOffline,
		&visPresence, &visLastSeen, &allow); err != nil {
		return nil, err
	}
	st.Version = uint64(version)
	if visPresence != 0 || visLastSeen != 0 || len(allow) > 0 {
		st.Visibility = &messages.Visibility{
			Presence: messages.VisibilityMode(visPresence),
			LastSeen: messages.VisibilityMode(visLastSeen),
			Allow:    allow,
		}
	}
	return st, nil
}

// insertSQL creates a record that must not exist yet (prevVersion 0).
const insertSQL = "INSERT INTO presence_users (" + userColumns + `)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
ON CONFLICT (user_id) DO NOTHING`

// updateSQL replaces a record whose version is $15. A concurrent writer's
// update makes this one wait for its row lock and then re-check the version
// on the row as committed, so exactly one of two writers with the same
// prevVersion wins. A missing row matches nothing, as prevVersion > 0
// requires.
const updateSQL = `UPDATE presence_users SET
	username = $2, is_online = $3, is_busy = $4, busy_until = $5,
	last_seen = greatest(last_seen, $6), created_at = $7, updated_at = $8,
	version = $9, sessions_held = $10, appear_offline = $11,
	visibility_presence = $12, visibility_last_seen = $13, visibility_allow = $14
WHERE user_id = $1 AND version = $15`

// Save writes st if the stored version equals prevVersion; see Store.Save.
// The write is one statement; only a conflict costs a second query, to say
// in the error which version is stored.
func (p *Postgres) Save(ctx context.Context, st *messages.UserState, prevVersion uint64) error {
	if err := checkSave(st, prevVersion); err != nil {
		return err
	}
	if p.closed.Load() {
		return errClosed
	}
	id := st.GetUserId()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: save user %d: %w", id, err)
	}
	args := []any{id, st.GetUsername(), st.GetIsOnline(), st.GetIsBusy(), st.GetBusyUntil(),
		st.GetLastSeen(), st.GetCreatedAt(), st.GetUpdatedAt(), int64(st.GetVersion()), st.GetSessionsHeld(), st.GetAppearOffline(),
		int16(st.GetVisibility().GetPresence()), int16(st.GetVisibility().GetLastSeen()), visibilityAllow(st)}
	var tag pgconn.CommandTag
	var err error
	if prevVersion == 0 {
		tag, err = p.pool.Exec(ctx, insertSQL, args...)
	} else {
		tag, err = p.pool.Exec(ctx, updateSQL, append(args, int64(prevVersion))...)
	}
	if err != nil {
		return wrapPgErr(err, "save user %d", id)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	return p.conflict(ctx, id, prevVersion)
}

// conflict builds the ErrVersionConflict for a Save that matched no row,
// naming the version stored now if it can still be read.
func (p *Postgres) conflict(ctx context.Context, id int64, prevVersion uint64) error {
	var stored int64
	err := p.pool.QueryRow(ctx, "SELECT version FROM presence_users WHERE user_id = $1", id).Scan(&stored)
	switch {
	case err == nil:
		return conflictError(id, prevVersion, uint64(stored), true)
	case errors.Is(err, pgx.ErrNoRows):
		return conflictError(id, prevVersion, 0, false)
	default:
		return fmt.Errorf("store: save user %d: expected version %d, stored version unknown (%v): %w",
			id, prevVersion, err, ErrVersionConflict)
	}
}

// touchSQL raises last_seen for a batch in one statement. The users to
// change are locked first in user_id order (ORDER BY is applied before
// FOR UPDATE), so two nodes flushing overlapping batches at once queue
// behind each other instead of deadlocking; greatest() keeps the rule that
// last_seen never goes back even for a row updated while the lock was
// awaited. Missing users join nothing and are skipped.
const touchSQL = `WITH t (id, ls) AS (
	SELECT * FROM unnest($1::bigint[], $2::bigint[])
), locked AS MATERIALIZED (
	SELECT u.user_id, t.ls FROM presence_users u JOIN t ON u.user_id = t.id
	WHERE u.last_seen < t.ls
	ORDER BY u.user_id
	FOR UPDATE OF u
)
UPDATE presence_users u SET last_seen = greatest(u.last_seen, locked.ls)
FROM locked WHERE u.user_id = locked.user_id`

// TouchLastSeen raises last_seen for the users that exist, in one statement;
// see Store.TouchLastSeen.
func (p *Postgres) TouchLastSeen(ctx context.Context, touches []Touch) error {
	if len(touches) == 0 {
		return nil
	}
	if p.closed.Load() {
		return errClosed
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: touch last_seen of %d users: %w", len(touches), err)
	}
	ids, seen := coalesceTouches(touches)
	if _, err := p.pool.Exec(ctx, touchSQL, ids, seen); err != nil {
		return wrapPgErr(err, "touch last_seen of %d users", len(ids))
	}
	return nil
}

// coalesceTouches returns the touches sorted by user id with one entry per
// user holding its largest value. An UPDATE ... FROM that joins a row to
// several source rows applies only one of them, chosen arbitrarily, so
// duplicates must go before the statement. The caller's slice is not
// modified.
func coalesceTouches(touches []Touch) (ids, seen []int64) {
	sorted := touches
	less := func(a, b Touch) int { return cmp.Compare(a.UserID, b.UserID) }
	if !slices.IsSortedFunc(touches, less) {
		sorted = slices.Clone(touches)
		slices.SortStableFunc(sorted, less)
	}
	ids = make([]int64, 0, len(sorted))
	seen = make([]int64, 0, len(sorted))
	for _, t := range sorted {
		if n := len(ids); n > 0 && ids[n-1] == t.UserID {
			seen[n-1] = max(seen[n-1], t.LastSeen)
			continue
		}
		ids = append(ids, t.UserID)
		seen = append(seen, t.LastSeen)
	}
	return ids, seen
}

const (
	scanFirstSQL = "SELECT " + userColumns + ` FROM presence_users
WHERE (is_online OR is_busy) AND user_id >= $1 ORDER BY user_id LIMIT $2`
	scanNextSQL = "SELECT " + userColumns + ` FROM presence_users
WHERE (is_online OR is_busy) AND user_id > $1 ORDER BY user_id LIMIT $2`
)

// ScanLive calls fn for every online or busy record, in user id order. It
// reads a page of records at a time through the partial index, each page
// fully and with its connection released before fn runs, so a slow fn holds
// no connection or snapshot, and stopping early costs nothing. A record
// changed during the scan is seen as it is when its page is read.
func (p *Postgres) ScanLive(ctx context.Context, fn func(*messages.UserState) error) error {
	if p.closed.Load() {
		return errClosed
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: scan live users: %w", err)
	}
	query, after := scanFirstSQL, int64(-1<<63)
	for {
		rows, err := p.pool.Query(ctx, query, after, scanPageSize)
		if err != nil {
			return wrapPgErr(err, "scan live users")
		}
		page, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*messages.UserState, error) {
			return scanUser(row)
		})
		if err != nil {
			return wrapPgErr(err, "scan live users")
		}
		for _, st := range page {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("store: scan live users: %w", err)
			}
			if err := fn(st); err != nil {
				// The caller's own error, as it returned it.
				return err
			}
		}
		if len(page) < scanPageSize {
			return nil
		}
		query, after = scanNextSQL, page[len(page)-1].GetUserId()
	}
}

// Close closes the pool's connections, waiting for those in use to be
// returned. Later calls fail; calling Close again is harmless.
func (p *Postgres) Close() error {
	if p.closed.CompareAndSwap(false, true) {
		p.pool.Close()
	}
	return nil
}

// wrapPgErr prefixes err with what was being done and, when it means the
// database cannot be reached, also wraps ErrUnavailable so that callers
// answer 503 and retry later. The original error stays in the chain.
func wrapPgErr(err error, format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	if isUnavailable(err) {
		return fmt.Errorf("store: %s: %w: %w", what, ErrUnavailable, err)
	}
	return fmt.Errorf("store: %s: %w", what, err)
}

// isUnavailable reports whether err means the database could not be used
// at all (unreachable, refusing connections, shutting down, out of
// resources, too slow for the caller's deadline), as opposed to rejecting
// this particular statement.
func isUnavailable(err error) bool {
	if errors.Is(err, ErrUnavailable) {
		return true
	}
	// The caller gave up: not the database's fault. pgconn reports a
	// context canceled before or during a query as a timeout too, so this
	// check comes first.
	if errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err) {
		return true
	}
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		// Refused, unreachable, timed out, TLS failed, or the server said
		// no (authentication, missing database, too many connections):
		// either way no connection could be had.
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case strings.HasPrefix(pgErr.Code, "08"), // connection_exception
			strings.HasPrefix(pgErr.Code, "53"), // insufficient_resources
			strings.HasPrefix(pgErr.Code, "58"), // system_error (I/O)
			pgErr.Code == "57P01",               // admin_shutdown
			pgErr.Code == "57P02",               // crash_shutdown
			pgErr.Code == "57P03",               // cannot_connect_now
			pgErr.Code == "57014",               // query_canceled: statement_timeout on an overloaded server
			pgErr.Code == "25006":               // read_only_sql_transaction: a standby after failover
			return true
		}
		return false
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EPIPE) || pgconn.SafeToRetry(err)
}

// startupRetryable reports whether waiting may fix a failed start: not when
// the server answered and refused the credentials or the database name.
func startupRetryable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case strings.HasPrefix(pgErr.Code, "28"), // invalid_authorization_specification, invalid_password
			pgErr.Code == "3D000", // invalid_catalog_name: no such database
			pgErr.Code == "42501": // insufficient_privilege
			return false
		}
	}
	return true
}

// visibilityAllow is the allowlist of st as the column stores it: never
// NULL.
func visibilityAllow(st *messages.UserState) []int64 {
	if allow := st.GetVisibility().GetAllow(); allow != nil {
		return allow
	}
	return []int64{}
}
