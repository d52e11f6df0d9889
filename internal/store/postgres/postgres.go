// Package postgres implements store.Store on PostgreSQL (pgx v5).
//
// Tables live in whatever schema the connection's search_path selects, so
// several engines (or tests) can share one database in separate schemas.
// Queries are written in queries/*.sql and compiled by sqlc into
// internal/dbsqlc; only ListRuns, whose filters are optional, builds its SQL
// in Go.
//
// Positions follow commit order because AppendEvents increments the single
// log_head row: its row lock is held until commit, so appending transactions
// commit one after another in the order they took their positions.
package postgres

//go:generate go tool sqlc generate

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"runtime"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/runnel-dev/runnel/internal/redact"
	"github.com/runnel-dev/runnel/internal/store"
	"github.com/runnel-dev/runnel/internal/store/postgres/internal/dbsqlc"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is the PostgreSQL store. It is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
	q    *dbsqlc.Queries
	hook store.CommitHook
	// channel is this schema's notification channel (see NotifyChannel).
	channel string
}

var _ store.Store = (*Store)(nil)

// Open connects to the database at url (a postgres:// URL or a key=value
// connection string), applies pending migrations to the schema its
// search_path selects, and creates the event log on first use.
//
// The pool holds max(8, 4*GOMAXPROCS) connections unless the URL sets
// pool_max_conns.
func Open(ctx context.Context, url string, opts store.Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx redacts the password in its own message.
		return nil, fmt.Errorf("postgres: parse connection string: %w", err)
	}
	// Every query here walks one index in its order (a run's events by
	// position, a page at a time). On a table whose statistics are stale
	// (new, or grown fast since the last ANALYZE) the planner may estimate
	// a run has a handful of events and pick a bitmap scan plus a sort,
	// which reads every remaining event of the run for each page: paging
	// through a large run goes quadratic (17k events/s instead of >100k).
	// Without bitmap scans it keeps the ordered index scan.
	if _, set := cfg.ConnConfig.RuntimeParams["enable_bitmapscan"]; !set {
		cfg.ConnConfig.RuntimeParams["enable_bitmapscan"] = "off"
	}
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = int32(max(8, 4*runtime.GOMAXPROCS(0)))
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open %s: %w", redact.Secrets(url), err)
	}
	// The pool connects lazily; fail here, naming the server, rather than
	// on the first query.
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: cannot reach %s: %w", redact.Secrets(url), err)
	}
	s := &Store{pool: pool, q: dbsqlc.New(pool), hook: opts.CommitHook}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: migrate %s: %w", redact.Secrets(url), err)
	}
	return s, nil
}

// migrate applies the embedded migrations with goose and creates the
// log_head row, holding a per-schema advisory lock throughout so that
// engine nodes starting together migrate one at a time.
//
// The lock is taken on a connection of its own, outside the pool: goose's
// session locker would not do, as goose checks for (and creates) its version
// table before taking it, so nodes racing on a fresh schema collide there
// and goose backs off for a second.
func (s *Store) migrate(ctx context.Context) error {
	lockConn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig)
	if err != nil {
		return fmt.Errorf("connect for migration lock: %w", err)
	}
	// Ending the session releases the lock, whatever happened.
	defer lockConn.Close(context.WithoutCancel(ctx))
	lq := dbsqlc.New(lockConn)
	schema, err := lq.CurrentSchema(ctx)
	if err != nil {
		return fmt.Errorf("read current schema: %w", err)
	}
	if schema == "" {
		return errors.New("search_path names no existing schema to create tables in")
	}
	// Channels are database-wide: naming the schema keeps the stores of
	// other schemas (other deployments, parallel tests) from waking ours.
	s.channel = NotifyChannel + ":" + schema
	if err := lq.LockMigrations(ctx); err != nil {
		return fmt.Errorf("take migration lock on schema %s: %w", schema, err)
	}

	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("embedded migrations: %w", err)
	}
	// goose needs database/sql; this *sql.DB borrows connections from the
	// pool (closing it leaves the pool open).
	db := stdlib.OpenDBFromPool(s.pool)
	defer db.Close()
	provider, err := goose.NewProvider(goose.DialectPostgres, db, sub,
		// Only our embedded files: never Go migrations other packages
		// might have registered with goose globally.
		goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return fmt.Errorf("load migrations: %w", err)
	}
	if _, err := provider.Up(ctx); err != nil {
		return fmt.Errorf("apply migrations to schema %s: %w", schema, err)
	}
	// Idempotent: only the very first open of a schema picks the log ID.
	if err := s.q.InitLogHead(ctx, uuid.NewString()); err != nil {
		return fmt.Errorf("create log head: %w", err)
	}
	return nil
}

// Close closes the pool, waiting for connections in use to be returned.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// LogID returns the log ID chosen when the database was created.
func (s *Store) LogID(ctx context.Context) (string, error) {
	id, err := s.q.GetLogID(ctx)
	if err != nil {
		return "", mapErr(err, "get log id")
	}
	return id, nil
}
