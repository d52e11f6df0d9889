package sqlite

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"

	"github.com/google/uuid"
)

// Backup writes a consistent copy of the database at src to dst with
// SQLite's VACUUM INTO: one read transaction, so the copy is the database
// as of one commit, taken while an engine goes on writing (WAL mode lets a
// reader run alongside the writer; the writer is not blocked). The copy is
// compact (free pages are dropped) and is a complete database with no -wal
// file: an engine starts on it as is.
//
// The copy gets a new event log id. It may lack the newest events of src,
// whose positions an engine on the copy would hand to different events: a
// new id makes every position of src's log refused there (InvalidArgument)
// instead of silently meaning something else.
//
// Errors: src missing or not a Runnel database; dst already existing (it is
// never overwritten) or its directory missing.
func Backup(ctx context.Context, src, dst string) (err error) {
	if _, err := os.Stat(src); err != nil {
		return fmt.Errorf("back up %s: %w", src, err)
	}
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("back up to %s: the file exists; choose a new name (a backup never overwrites)", dst)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("back up to %s: %w", dst, err)
	}
	dir := filepath.Dir(dst)
	if fi, err := os.Stat(dir); err != nil {
		return fmt.Errorf("back up to %s: directory: %w", dst, err)
	} else if !fi.IsDir() {
		return fmt.Errorf("back up to %s: %s is not a directory", dst, dir)
	}
	// mode=rw: never create an empty database where src was expected.
	db, err := openDB(ctx, src, url.Values{
		"mode":    {"rw"},
		"_pragma": {"busy_timeout(" + fmt.Sprint(DefaultBusyTimeout.Milliseconds()) + ")"},
	})
	if err != nil {
		return fmt.Errorf("back up %s: open: %w", src, err)
	}
	defer db.Close()
	var tables int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'log_head'`).Scan(&tables); err != nil {
		return fmt.Errorf("back up %s: not a SQLite database: %w", src, err)
	}
	if tables == 0 {
		return fmt.Errorf("back up %s: not a Runnel database (no event log)", src)
	}

	// Write next to dst under a temporary name, then link it into place:
	// an interrupted backup never leaves a truncated file named dst, and a
	// dst created meanwhile is not replaced.
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(dst)+".partial-*")
	if err != nil {
		return fmt.Errorf("back up to %s: %w", dst, err)
	}
	// The copy holds everything the database does: it is created 0600
	// (CreateTemp's mode) and VACUUM INTO fills the empty file in place,
	// so it is never readable by others, not even for a moment.
	tmpPath := tmp.Name()
	_ = tmp.Close()
	defer os.Remove(tmpPath)
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, tmpPath); err != nil {
		return fmt.Errorf("back up %s: VACUUM INTO: %w", src, err)
	}
	if err := os.Chmod(tmpPath, 0o600); err != nil {
		return fmt.Errorf("back up to %s: %w", dst, err)
	}
	if err := renewLogID(ctx, tmpPath); err != nil {
		return fmt.Errorf("back up to %s: %w", dst, err)
	}
	if err := syncFile(tmpPath); err != nil {
		return fmt.Errorf("back up to %s: %w", dst, err)
	}
	if err := os.Link(tmpPath, dst); err != nil {
		return fmt.Errorf("back up to %s: %w", dst, err)
	}
	return nil
}

// renewLogID gives the database at path a new event log id.
func renewLogID(ctx context.Context, path string) error {
	db, err := openDB(ctx, path, url.Values{"mode": {"rw"}})
	if err != nil {
		return fmt.Errorf("open the copy: %w", err)
	}
	defer db.Close()
	id, err := uuid.NewV7()
	if err != nil {
		return fmt.Errorf("new log id: %w", err)
	}
	if _, err := db.ExecContext(ctx, `UPDATE log_head SET log_id = ?`, id.String()); err != nil {
		return fmt.Errorf("set the copy's log id: %w", err)
	}
	return db.Close()
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
