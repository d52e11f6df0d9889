package bench

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	// The same pure-Go SQLite driver the engine's store uses.
	_ "modernc.org/sqlite"
)

// A figure alone says little on a shared two-core machine; beside the raw
// limit of the resource it uses, measured in the same run on the same
// store, it says how much is left. The limits here are what the store or
// the network gives to a program that does nothing else: plain SQL on a
// table shaped like the event log, and a plain SSE server.

// Limit is the raw capacity a figure is compared with.
type Limit struct {
	// What names how it was measured ("batched INSERT, 512 rows/tx").
	What  string  `json:"what"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
}

// withLimit attaches a limit to a measurement; the ratio is worked out
// after medians are taken.
func withLimit(m Measurement, what string, value float64, unit string) Measurement {
	m.Limit = &Limit{What: what, Value: value, Unit: unit}
	return m
}

// rawStore is plain SQL on the scenario's kind of store: a scratch SQLite
// file beside the engine's (same disk, same pragmas) or a table in the
// scenario's PostgreSQL schema. The engine's own tables are only read.
type rawStore struct {
	sqlite *sql.DB       // scratch file, for writes
	engine *sql.DB       // the engine's SQLite file, read-only
	pg     *pgxpool.Pool // the scenario's schema
	table  string
}

// limitTable has the event log's shape where it costs: a primary key on
// the position and the per-run index every run read walks.
const limitTable = "bench_limit"

func (c *cluster) openRawStore(ctx context.Context) (*rawStore, error) {
	r := &rawStore{table: limitTable}
	if c.dbURL != "" {
		cfg, err := pgxpool.ParseConfig(c.dbURL)
		if err != nil {
			return nil, fmt.Errorf("limits: %w", err)
		}
		cfg.MaxConns = 80
		if r.pg, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
			return nil, fmt.Errorf("limits: connect: %w", err)
		}
		_, err = r.pg.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+limitTable+` (
			position bigint PRIMARY KEY, tenant_id text NOT NULL, run_id text NOT NULL,
			type text NOT NULL, payload bytea, created_at bigint NOT NULL)`)
		if err == nil {
			_, err = r.pg.Exec(ctx, `CREATE INDEX IF NOT EXISTS bench_limit_run ON `+limitTable+` (tenant_id, run_id, position)`)
		}
		if err != nil {
			r.close()
			return nil, fmt.Errorf("limits: create table: %w", err)
		}
		return r, nil
	}
	open := func(path string, pragmas ...string) (*sql.DB, error) {
		u := url.URL{Scheme: "file", Opaque: (&url.URL{Path: path}).EscapedPath(), RawQuery: url.Values{"_pragma": pragmas}.Encode()}
		db, err := sql.Open("sqlite", u.String())
		if err != nil {
			return nil, err
		}
		return db, db.PingContext(ctx)
	}
	var err error
	// The engine's defaults: WAL, synchronous=NORMAL, one writer.
	r.sqlite, err = open(filepath.Join(c.dir, "limit.db"), "journal_mode(WAL)", "synchronous(NORMAL)", "busy_timeout(10000)")
	if err != nil {
		r.close()
		return nil, fmt.Errorf("limits: open scratch SQLite file: %w", err)
	}
	r.sqlite.SetMaxOpenConns(1)
	_, err = r.sqlite.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+limitTable+` (
		position INTEGER PRIMARY KEY, tenant_id TEXT NOT NULL, run_id TEXT NOT NULL,
		type TEXT NOT NULL, payload BLOB, created_at INTEGER NOT NULL);
		CREATE INDEX IF NOT EXISTS bench_limit_run ON `+limitTable+` (tenant_id, run_id, position)`)
	if err != nil {
		r.close()
		return nil, fmt.Errorf("limits: create table: %w", err)
	}
	if c.sqlitePath != "" {
		if r.engine, err = open(c.sqlitePath, "query_only(1)", "busy_timeout(10000)"); err != nil {
			r.close()
			return nil, fmt.Errorf("limits: open the engine's SQLite file: %w", err)
		}
	}
	return r, nil
}

// close closes what openRawStore opened; a nil store (no limits against a
// remote engine) has nothing to close.
func (r *rawStore) close() {
	if r == nil {
		return
	}
	if r.sqlite != nil {
		_ = r.sqlite.Close()
	}
	if r.engine != nil {
		_ = r.engine.Close()
	}
	if r.pg != nil {
		r.pg.Close()
	}
}

var rawPosition atomic.Int64

// insertBatch inserts rows payloads of size bytes in one transaction.
func (r *rawStore) insertBatch(ctx context.Context, rows, size int) error {
	payload := make([]byte, size)
	now := time.Now().UnixMicro()
	first := rawPosition.Add(int64(rows)) - int64(rows) + 1
	if r.pg != nil {
		src := make([][]any, rows)
		for i := range src {
			src[i] = []any{first + int64(i), "limit", "run", "step.stream", payload, now}
		}
		tx, err := r.pg.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx) //nolint:errcheck // after Commit it is a no-op
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{limitTable},
			[]string{"position", "tenant_id", "run_id", "type", "payload", "created_at"}, pgx.CopyFromRows(src)); err != nil {
			return err
		}
		return tx.Commit(ctx)
	}
	tx, err := r.sqlite.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO `+limitTable+` VALUES (?, 'limit', 'run', 'step.stream', ?, ?)`)
	if err != nil {
		return err
	}
	for i := range rows {
		if _, err := stmt.ExecContext(ctx, first+int64(i), payload, now); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// insertLimit is batched INSERT rows/s of size-byte payloads, 512 rows a
// transaction, one writer (the engine's store has one writer on SQLite and
// groups appends into large transactions on both).
func (r *rawStore) insertLimit(ctx context.Context, size int, d time.Duration) (float64, error) {
	const batch = 512
	start := time.Now()
	rows := 0
	for time.Since(start) < d {
		if err := r.insertBatch(ctx, batch, size); err != nil {
			return 0, fmt.Errorf("limits: batched insert: %w", err)
		}
		rows += batch
	}
	return float64(rows) / time.Since(start).Seconds(), nil
}

// commitStats is what the bare commit round trip gives: one small row per
// transaction.
type commitStats struct {
	perSecond float64
	p50, p99  float64 // ms
}

// commitLimit runs transactions of one 100-byte INSERT each, from
// concurrency clients at once, for d.
func (r *rawStore) commitLimit(ctx context.Context, concurrency int, d time.Duration) (commitStats, error) {
	var (
		mu  sync.Mutex
		lat []time.Duration
	)
	deadline := time.Now().Add(d)
	g, gctx := errgroup.WithContext(ctx)
	start := time.Now()
	for range concurrency {
		g.Go(func() error {
			var mine []time.Duration
			for time.Now().Before(deadline) {
				t := time.Now()
				if err := r.insertBatch(gctx, 1, 100); err != nil {
					return fmt.Errorf("limits: commit round trip: %w", err)
				}
				mine = append(mine, time.Since(t))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return commitStats{}, err
	}
	sorted := sortDurations(lat)
	return commitStats{
		perSecond: float64(len(lat)) / time.Since(start).Seconds(),
		p50:       percentile(sorted, 50),
		p99:       percentile(sorted, 99),
	}, nil
}

// readLimit reads every event of one run of the engine's store in position
// order with one plain query, as fast as the driver hands rows over: the
// most a replay of that run can get from the store.
func (r *rawStore) readLimit(ctx context.Context, runID string) (float64, error) {
	// By the index the engine reads a run through.
	const q = `SELECT position, type, payload, created_at FROM events
		WHERE tenant_id = (SELECT tenant_id FROM runs WHERE id = $1) AND run_id = $1 ORDER BY position`
	start := time.Now()
	n := 0
	if r.pg != nil {
		rows, err := r.pg.Query(ctx, q, runID)
		if err != nil {
			return 0, fmt.Errorf("limits: sequential read: %w", err)
		}
		var (
			pos, at int64
			typ     string
			payload []byte
		)
		_, err = pgx.ForEachRow(rows, []any{&pos, &typ, &payload, &at}, func() error { n++; return nil })
		if err != nil {
			return 0, fmt.Errorf("limits: sequential read: %w", err)
		}
	} else {
		if r.engine == nil {
			return 0, fmt.Errorf("limits: no engine store to read")
		}
		rows, err := r.engine.QueryContext(ctx, q, runID)
		if err != nil {
			return 0, fmt.Errorf("limits: sequential read: %w", err)
		}
		defer rows.Close()
		var (
			pos, at int64
			typ     string
			payload []byte
		)
		for rows.Next() {
			if err := rows.Scan(&pos, &typ, &payload, &at); err != nil {
				return 0, fmt.Errorf("limits: sequential read: %w", err)
			}
			n++
		}
		if err := rows.Err(); err != nil {
			return 0, fmt.Errorf("limits: sequential read: %w", err)
		}
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// rawLimits opens the raw store of the cluster's kind, or returns nil when
// the bench measures a running engine (--host), whose store it cannot see.
func (c *cluster) rawLimits(ctx context.Context, o Options) (*rawStore, error) {
	if c.dbURL == "" && c.sqlitePath == "" {
		o.progress("limits: not measured against a remote engine")
		return nil, nil
	}
	return c.openRawStore(ctx)
}

// limitDuration is how long each raw limit is measured.
func limitDuration(o Options) time.Duration { return min(2*time.Second, o.Duration) }

const (
	commitWhat = "bare commit round trip, 1 row/tx"
	insertWhat = "batched INSERT, 512 rows/tx, one writer"
	readWhat   = "one plain SELECT of the run's rows"
)

// withCommitFloor compares the p50 and p99 latencies among ms with one bare
// commit's round trip (one client): an event is delivered after the commit
// that stored it, so that is the floor under its latency.
func (c *cluster) withCommitFloor(ctx context.Context, o Options, ms []Measurement) ([]Measurement, error) {
	raw, err := c.rawLimits(ctx, o)
	if err != nil || raw == nil {
		return ms, err
	}
	defer raw.close()
	o.progress("limits: bare commit round trips")
	lim, err := raw.commitLimit(ctx, 1, limitDuration(o))
	if err != nil {
		return nil, err
	}
	for i, m := range ms {
		switch m.Metric {
		case "p50":
			ms[i] = withLimit(m, commitWhat+", 1 client, p50", lim.p50, "ms")
		case "p99":
			ms[i] = withLimit(m, commitWhat+", 1 client, p99", lim.p99, "ms")
		}
	}
	return ms, nil
}
