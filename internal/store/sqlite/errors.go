package sqlite

import (
	"database/sql"
	"errors"
	"fmt"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/runnel-dev/runnel/internal/store"
)

// mapErr is the one place driver errors become store sentinels. It wraps err
// with the context given by format and args; a sentinel is wrapped with %w
// and the driver's message kept as text only, so callers can match the
// sentinel but never see a driver error type.
func mapErr(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	msg := fmt.Sprintf(format, args...)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", msg, store.ErrNotFound)
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch code := se.Code(); {
		case code&0xff == sqlite3.SQLITE_BUSY, code&0xff == sqlite3.SQLITE_LOCKED:
			return fmt.Errorf("%s: %w: %s", msg, store.ErrRetry, se.Error())
		case code == sqlite3.SQLITE_CONSTRAINT_UNIQUE, code == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return fmt.Errorf("%s: %w: %s", msg, store.ErrConflict, se.Error())
		}
	}
	return fmt.Errorf("%s: %w", msg, err)
}

// notFoundIfNone turns "no row changed" from an :execrows query into
// ErrNotFound.
func notFoundIfNone(n int64, err error, format string, args ...any) error {
	if err != nil {
		return mapErr(err, format, args...)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), store.ErrNotFound)
	}
	return nil
}
