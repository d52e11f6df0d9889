package server

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
)

// The data the engine keeps on disk (the SQLite database with its -wal and
// -shm files, admin.token) is readable by the engine's user only: the
// database holds every run's input, output and stream, and token hashes.
const (
	privateFileMode = 0o600
	privateDirMode  = 0o700
)

// prepareSQLiteFile makes the database file at path private before SQLite
// opens it: a missing file is created empty with mode 0600 (SQLite then
// gives its -wal and -shm files the same mode), and an existing one, with
// its -wal and -shm, is tightened to 0600 with a logged notice.
func prepareSQLiteFile(path string, log *slog.Logger) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, privateFileMode)
	switch {
	case err == nil:
		return f.Close()
	case !errors.Is(err, fs.ErrExist):
		return fmt.Errorf("create %s: %w", path, err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := tighten(p, privateFileMode, log); err != nil {
			return err
		}
	}
	return nil
}

// secureDataDir tightens the data directory to 0700, and admin.token to
// 0600, when the directory is the engine's (it holds runnel.db or
// admin.token): an existing directory created by hand or by an older
// version keeps its mode otherwise. A directory with the sticky bit (a
// shared one such as /tmp) is left alone.
func secureDataDir(dir string, log *slog.Logger) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // PostgreSQL with no admin.token to keep
	}
	if err != nil {
		return fmt.Errorf("data directory %s: %w", dir, err)
	}
	if !fi.IsDir() || fi.Mode()&os.ModeSticky != 0 {
		return nil
	}
	ours := false
	for _, name := range []string{"runnel.db", "admin.token"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			ours = true
		}
	}
	if !ours {
		return nil
	}
	if err := tighten(filepath.Join(dir, "admin.token"), privateFileMode, log); err != nil {
		return err
	}
	return tighten(dir, privateDirMode, log)
}

// tighten removes the permission bits of path beyond want (a missing path
// is fine) and logs what it changed.
func tighten(path string, want fs.FileMode, log *slog.Logger) error {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check permissions of %s: %w", path, err)
	}
	mode := fi.Mode().Perm()
	if mode&^want == 0 {
		return nil
	}
	if err := os.Chmod(path, mode&want); err != nil {
		return fmt.Errorf("restrict permissions of %s to %04o: %w", path, mode&want, err)
	}
	log.Warn("restricted permissions: the engine's data is for its own user only",
		"path", path, "was", fmt.Sprintf("%04o", mode), "now", fmt.Sprintf("%04o", mode&want))
	return nil
}
