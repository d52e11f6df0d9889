package postgres

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/runnel-dev/runnel/internal/store"
)

// SQLSTATE codes the store translates.
const (
	codeUniqueViolation      = "23505"
	codeSerializationFailure = "40001"
	codeDeadlockDetected     = "40P01"
)

// dbErr is the one place that translates driver errors into the store's
// sentinels. A translated error keeps the server's message as text but not
// the driver's type, so the engine only ever matches on sentinels. Other
// errors (context cancellation, connection failures) pass through wrapped
// as they are. Callers add what they were doing:
//
//	fmt.Errorf("get run %s: %w", id, dbErr(err))
func dbErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrNotFound
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case codeUniqueViolation:
			return fmt.Errorf("%w: %s", store.ErrConflict, pgErr.Error())
		case codeDeadlockDetected, codeSerializationFailure:
			return fmt.Errorf("%w: %s", store.ErrRetry, pgErr.Error())
		}
	}
	return err
}
