package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/runnel-dev/runnel/internal/store"
)

// SQLSTATE codes the store translates.
const (
	codeUniqueViolation      = "23505"
	codeSerializationFailure = "40001"
	codeDeadlockDetected     = "40P01"
	// A NUL in text, or text the database encoding cannot hold. The engine
	// refuses such text before it gets here; this is the safety net.
	codeCharacterNotInRepertoire = "22021"
	codeUntranslatableCharacter  = "22P05"
	// Class 08 is "connection exception"; 57P01-57P03 are the server
	// shutting down, crashing, or not accepting connections yet (a
	// restart).
	classConnectionException = "08"
	codeAdminShutdown        = "57P01"
	codeCrashShutdown        = "57P02"
	codeCannotConnectNow     = "57P03"
)

// mapErr is the one place driver errors become store sentinels. It wraps
// err with the context given by format and args; a sentinel is wrapped with
// %w and the server's message kept as text only, so callers can match the
// sentinel but never see a driver error type. Losing the server (refused,
// reset, restarting) becomes store.ErrUnavailable, so clients are told to
// retry instead of seeing an internal error. Other errors (context
// cancellation) are wrapped as they are.
func mapErr(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	msg := fmt.Sprintf(format, args...)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%s: %w", msg, store.ErrNotFound)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case codeUniqueViolation:
			return fmt.Errorf("%s: %w: %s", msg, store.ErrConflict, pgErr.Error())
		case codeDeadlockDetected, codeSerializationFailure:
			return fmt.Errorf("%s: %w: %s", msg, store.ErrRetry, pgErr.Error())
		case codeCharacterNotInRepertoire, codeUntranslatableCharacter:
			return fmt.Errorf("%s: %w: %s", msg, store.ErrInvalidText, pgErr.Message)
		}
	}
	if connectionLost(err) {
		return fmt.Errorf("%s: %w: %s", msg, store.ErrUnavailable, err.Error())
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

// errConflict reports a unique key taken. The inserts that can hit one use
// ON CONFLICT DO NOTHING and report zero rows instead of raising an error,
// because an error aborts the whole PostgreSQL transaction while the
// contract (and SQLite) lets the caller carry on after store.ErrConflict.
func errConflict(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), store.ErrConflict)
}

// connectionLost reports whether err says the server could not be reached
// or the connection broke, rather than that a statement failed. The
// caller's own cancellation is not a lost connection.
func connectionLost(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case codeAdminShutdown, codeCrashShutdown, codeCannotConnectNow:
			return true
		}
		return strings.HasPrefix(pgErr.Code, classConnectionException)
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connectErr) || errors.As(err, &netErr) ||
		errors.Is(err, pgconn.ErrConnClosed) || pgconn.SafeToRetry(err) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
