// Package sqlite implements store.Store on a SQLite file (modernc.org/sqlite,
// no cgo).
//
// SQLite allows one writer at a time, so the store has exactly one write
// connection: every Store.Write runs on it, in a BEGIN IMMEDIATE transaction
// that takes the write lock up front (a deferred transaction that upgrades
// from read to write can fail with SQLITE_BUSY instead of waiting). Because
// of that single writer, positions are taken and committed in the same order,
// which is the invariant package store asks for. Reads go to a separate pool
// of query_only connections, which WAL mode lets run alongside the writer.
package sqlite

//go:generate go tool sqlc generate

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/runnel-dev/runnel/internal/store"
	"github.com/runnel-dev/runnel/internal/store/sqlite/internal/dbsqlc"
)

//go:embed migrations/*.sql
var migrations embed.FS

// DefaultBusyTimeout is how long a connection waits for a lock held by
// another connection (another process, or a checkpoint) before SQLITE_BUSY.
const DefaultBusyTimeout = 5 * time.Second

// Config configures Open.
type Config struct {
	// Path of the database file; created if missing (its directory must exist).
	Path string
	// SyncFull selects synchronous=FULL: every commit is fsynced, so a power
	// loss cannot lose it. The default, NORMAL, is durable across process
	// crashes; in WAL mode a power loss may roll back the last commits but
	// never corrupts the database.
	SyncFull bool
	// BusyTimeout overrides DefaultBusyTimeout.
	BusyTimeout time.Duration
	// ReadConns is the size of the read pool; 0: max(4, GOMAXPROCS).
	ReadConns int
}

// Store is a store.Store backed by one SQLite file.
type Store struct {
	path   string
	writer *sql.DB // one connection: all writes
	reader *sql.DB // query_only connections: Store's read methods
	read   *dbsqlc.Queries
	// readPage is ReadEvents' statement, on the reader.
	readPage *sql.Stmt
	// prepared holds every query prepared on the writer's one connection,
	// for its transactions.
	prepared *dbsqlc.Queries
	hook     store.CommitHook
	logID    string

	// writeSem is held by the goroutine writing a batch (see write.go). The
	// writer pool has one connection, so writes are serialised anyway;
	// holding this semaphore through commit and the commit hook as well
	// makes hooks run in commit (and so position) order.
	writeSem chan struct{}
	// pending are the writes waiting for the next batch.
	pendingMu sync.Mutex
	pending   []*writeReq
}

var _ store.Store = (*Store)(nil)

// Open opens (creating it if missing) the database at path with the default
// configuration and brings its schema up to date.
func Open(ctx context.Context, path string, opts store.Options) (*Store, error) {
	return OpenConfig(ctx, Config{Path: path}, opts)
}

// OpenConfig is Open with a Config.
func OpenConfig(ctx context.Context, cfg Config, opts store.Options) (_ *Store, err error) {
	if cfg.Path == "" {
		return nil, errors.New("open sqlite store: empty path")
	}
	// Check the directory here: SQLite's own error for it is only "unable
	// to open database file", without saying why.
	dir := filepath.Dir(cfg.Path)
	if fi, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("open sqlite store %s: directory: %w", cfg.Path, err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("open sqlite store %s: %s is not a directory", cfg.Path, dir)
	}
	busy := cfg.BusyTimeout
	if busy <= 0 {
		busy = DefaultBusyTimeout
	}
	syncMode := "NORMAL"
	if cfg.SyncFull {
		syncMode = "FULL"
	}
	readConns := cfg.ReadConns
	if readConns <= 0 {
		readConns = max(4, runtime.GOMAXPROCS(0))
	}

	s := &Store{path: cfg.Path, hook: opts.CommitHook, writeSem: make(chan struct{}, 1)}
	defer func() {
		if err != nil {
			_ = s.Close()
		}
	}()

	// Pragmas go in the DSN so that every connection the pools (re)open gets
	// them, not only the first.
	busyMs := strconv.FormatInt(busy.Milliseconds(), 10)
	s.writer, err = openDB(ctx, cfg.Path, url.Values{
		"_txlock": {"immediate"},
		"_pragma": {
			"busy_timeout(" + busyMs + ")",
			"journal_mode(WAL)",
			"synchronous(" + syncMode + ")",
			"foreign_keys(1)",
		},
	})
	if err != nil {
		return nil, fmt.Errorf("open sqlite store %s: %w", cfg.Path, err)
	}
	s.writer.SetMaxOpenConns(1)
	s.writer.SetMaxIdleConns(1)
	s.writer.SetConnMaxLifetime(0)
	s.writer.SetConnMaxIdleTime(0)

	if err := migrate(ctx, s.writer); err != nil {
		return nil, fmt.Errorf("open sqlite store %s: %w", cfg.Path, err)
	}
	logID, err := uuid.NewV7()
	if err != nil {
		return nil, fmt.Errorf("open sqlite store %s: new log id: %w", cfg.Path, err)
	}
	if s.prepared, err = dbsqlc.Prepare(ctx, s.writer); err != nil {
		return nil, fmt.Errorf("open sqlite store %s: prepare queries: %w", cfg.Path, err)
	}
	q := s.prepared
	if err := q.InitLogHead(ctx, logID.String()); err != nil {
		return nil, mapErr(err, "open sqlite store %s: init log head", cfg.Path)
	}
	if s.logID, err = q.GetLogID(ctx); err != nil {
		return nil, mapErr(err, "open sqlite store %s: read log id", cfg.Path)
	}

	// Readers are opened after the writer has set WAL mode (a property of
	// the file), so they never see the rollback journal.
	s.reader, err = openDB(ctx, cfg.Path, url.Values{
		"_pragma": {
			"busy_timeout(" + busyMs + ")",
			"query_only(1)",
		},
	})
	if err != nil {
		return nil, fmt.Errorf("open sqlite store %s: read pool: %w", cfg.Path, err)
	}
	s.reader.SetMaxOpenConns(readConns)
	// Keep idle readers: a new connection parses the schema again.
	s.reader.SetMaxIdleConns(readConns)
	// Prepared statements are re-prepared by database/sql on each read
	// connection the first time it runs them, then reused.
	if s.read, err = dbsqlc.Prepare(ctx, s.reader); err != nil {
		return nil, fmt.Errorf("open sqlite store %s: prepare read queries: %w", cfg.Path, err)
	}
	if s.readPage, err = s.reader.PrepareContext(ctx, readPageQuery); err != nil {
		return nil, fmt.Errorf("open sqlite store %s: prepare read queries: %w", cfg.Path, err)
	}
	return s, nil
}

func openDB(ctx context.Context, path string, params url.Values) (*sql.DB, error) {
	// A file: URI, so that a path with '?', '#' or '%' in it is not mistaken
	// for parameters; SQLite decodes the escapes.
	u := url.URL{Scheme: "file", Opaque: (&url.URL{Path: path}).EscapedPath(), RawQuery: params.Encode()}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		return nil, err
	}
	// sql.Open only validates its arguments; connect now so that an
	// unusable file fails Open rather than the first query.
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	return db, nil
}

// migrate applies the embedded migrations. The provider is local (no goose
// globals), and only the SQL files below are used.
func migrate(ctx context.Context, db *sql.DB) error {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, fsys, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// Close closes both pools. Writes in progress finish first (database/sql
// waits for connections in use).
func (s *Store) Close() error {
	var errs []error
	if s.read != nil {
		errs = append(errs, s.read.Close())
	}
	if s.readPage != nil {
		errs = append(errs, s.readPage.Close())
	}
	if s.prepared != nil {
		errs = append(errs, s.prepared.Close())
	}
	if s.reader != nil {
		errs = append(errs, s.reader.Close())
	}
	if s.writer != nil {
		errs = append(errs, s.writer.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close sqlite store %s: %w", s.path, err)
	}
	return nil
}

// LogID returns the log ID chosen when the database was created.
func (s *Store) LogID(ctx context.Context) (string, error) {
	return s.logID, nil
}
