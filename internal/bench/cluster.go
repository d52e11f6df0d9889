package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	proc "github.com/runnel-dev/runnel/internal/process"
	"github.com/runnel-dev/runnel/internal/redact"
)

// cluster is what a scenario runs against: engine processes it started (or
// a running engine given by --host) and bench worker processes.
type cluster struct {
	opts    Options
	dir     string // scratch directory: data directories and logs
	nodes   []*process
	workers []*process
	urls    []string // engine URLs, node order
	token   string
	// dropSchema removes the PostgreSQL schema the cluster created.
	dropSchema func()
	// dbURL is the PostgreSQL URL of that schema and sqlitePath the
	// engines' SQLite file: where the raw limits are measured.
	dbURL, sqlitePath string
}

// process is a child runnel process (internal/process, as the process
// tests start theirs).
type process struct {
	*proc.Process
	name string
	log  string // its stderr
}

// startCluster starts nodes engine processes on one database (or uses
// opts.Host) and no workers yet.
func startCluster(ctx context.Context, opts Options, nodes int) (c *cluster, err error) {
	dir, err := os.MkdirTemp("", "runnel-bench-")
	if err != nil {
		return nil, fmt.Errorf("scratch directory: %w", err)
	}
	c = &cluster{opts: opts, dir: dir}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	if opts.Host != "" {
		c.urls = strings.Split(opts.Host, ",")
		c.token = opts.Token
		if c.token == "" {
			c.token = os.Getenv("RUNNEL_TOKEN")
		}
		if len(c.urls) < nodes {
			return nil, fmt.Errorf("this scenario needs %d engine nodes: give --host as a comma-separated list of %d URLs", nodes, nodes)
		}
		return c, nil
	}
	db := ""
	if opts.postgres() {
		if db, err = c.createSchema(ctx); err != nil {
			return nil, err
		}
		c.dbURL = db
	} else {
		c.sqlitePath = filepath.Join(dir, "runnel.db")
	}
	for i := range nodes {
		nodeDB := db
		if nodeDB == "" {
			nodeDB = "sqlite://" + c.sqlitePath
		}
		p, url, err := c.startEngine(ctx, i, nodeDB)
		if err != nil {
			return nil, err
		}
		c.nodes = append(c.nodes, p)
		c.urls = append(c.urls, url)
		if i == 0 {
			b, err := os.ReadFile(filepath.Join(dir, "node0", "admin.token"))
			if err != nil {
				return nil, fmt.Errorf("read the engine's admin token: %w", err)
			}
			c.token = strings.TrimSpace(string(b))
		}
	}
	return c, nil
}

// createSchema makes a fresh schema in the PostgreSQL database, so every
// bench starts on an empty store and leaves nothing behind.
func (c *cluster) createSchema(ctx context.Context) (string, error) {
	conn, err := pgx.Connect(ctx, c.opts.DB)
	if err != nil {
		return "", fmt.Errorf("connect to %s: %w", redact.Secrets(c.opts.DB), err)
	}
	defer conn.Close(context.Background())
	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	schema := "runnel_bench_" + hex.EncodeToString(suffix[:])
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		return "", fmt.Errorf("create schema %s: %w", schema, err)
	}
	c.dropSchema = func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if conn, err := pgx.Connect(ctx, c.opts.DB); err == nil {
			_, _ = conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
			_ = conn.Close(ctx)
		}
	}
	u, err := url.Parse(c.opts.DB)
	if err != nil {
		// url.Error repeats the whole URL, password included.
		return "", fmt.Errorf("invalid --db %s: not a URL", redact.Secrets(c.opts.DB))
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

func (c *cluster) startEngine(ctx context.Context, i int, db string) (*process, string, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	dataDir := filepath.Join(c.dir, fmt.Sprintf("node%d", i))
	args := []string{"server", "--addr", addr, "--data-dir", dataDir, "--db", db, "--log-level", "warn"}
	if c.opts.ProfileDir != "" {
		args = append(args, "--cpuprofile", filepath.Join(c.opts.ProfileDir, fmt.Sprintf("engine%d.pprof", i)))
	}
	p, err := c.spawn(fmt.Sprintf("engine %d", i), nil, args...)
	if err != nil {
		return nil, "", err
	}
	base := "http://" + addr
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := p.WaitReady(wctx, base); err != nil {
		p.stop()
		return nil, "", fmt.Errorf("%s: %w\n%s", p.name, err, tail(p.log))
	}
	return p, base, nil
}

// startWorkers starts n bench worker processes connected to the engine at
// host, each with slots slots, and waits until each has registered.
func (c *cluster) startWorkers(ctx context.Context, n int, host string, slots int) error {
	for i := range n {
		ready := make(chan struct{})
		p, err := c.spawn(fmt.Sprintf("worker %d", len(c.workers)), ready, "bench-worker",
			"--host", host, "--token", c.token, "--slots", strconv.Itoa(slots))
		if err != nil {
			return err
		}
		c.workers = append(c.workers, p)
		select {
		case <-ready:
		case <-p.Done():
			return fmt.Errorf("bench worker %d exited before it was ready: %v\n%s", i, p.Err(), tail(p.log))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(60 * time.Second):
			return fmt.Errorf("bench worker %d not ready after 60s\n%s", i, tail(p.log))
		}
	}
	return nil
}

// spawn starts the runnel binary with args, its stderr going to a log
// file. When ready is not nil it is closed once the process prints "ready"
// on stdout.
func (c *cluster) spawn(name string, ready chan struct{}, args ...string) (*process, error) {
	logPath := filepath.Join(c.dir, strings.ReplaceAll(name, " ", "")+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cfg := proc.Config{Program: c.opts.Binary, Args: args, Log: logFile}
	if ready != nil {
		cfg.Stdout = &readyWriter{ready: ready}
	}
	p, err := proc.Start(cfg)
	if err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		<-p.Done()
		logFile.Close()
	}()
	return &process{Process: p, name: name, log: logPath}, nil
}

// readyWriter is a process's stdout: it closes ready at the first line
// "ready".
type readyWriter struct {
	ready chan struct{}
	line  []byte
}

func (w *readyWriter) Write(b []byte) (int, error) {
	for _, c := range b {
		if c != '\n' {
			if len(w.line) < 64 {
				w.line = append(w.line, c)
			}
			continue
		}
		if w.ready != nil && strings.TrimSpace(string(w.line)) == "ready" {
			close(w.ready)
			w.ready = nil
		}
		w.line = w.line[:0]
	}
	return len(b), nil
}

// rss returns the process's resident set size in bytes (Linux).
func (p *process) rss() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Pid()))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS in /proc status")
}

// stop ends the process: SIGTERM, then SIGKILL if it lingers.
func (p *process) stop() { _ = p.Stop(10 * time.Second) }

// close stops every process, drops the schema and removes the scratch
// directory.
func (c *cluster) close() {
	for _, p := range c.workers {
		p.stop()
	}
	for _, p := range c.nodes {
		p.stop()
	}
	if c.dropSchema != nil {
		c.dropSchema()
	}
	_ = os.RemoveAll(c.dir)
}

func freeAddr() (string, error) { return proc.FreeAddr() }

// tail returns the end of a log file, for error messages.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}
