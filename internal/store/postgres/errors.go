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

	"github.com/runnel-dev/runnel/internal/apierr"
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

// dbErr is the one place that translates driver errors into the store's
// sentinels. A translated error keeps the server's message as text but not
// the driver's type, so the engine only ever matches on sentinels. Losing
// the server (refused, reset, restarting) becomes store.ErrUnavailable, so
// clients are told to retry instead of seeing an internal error. Other
// errors (context cancellation) pass through wrapped as they are. Callers
// add what they were doing:
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
		case codeCharacterNotInRepertoire, codeUntranslatableCharacter:
			return &apierr.Error{Code: apierr.InvalidArgument, Message: "text holds a character the database cannot store (NUL, \\u0000): " + pgErr.Message}
		}
	}
	if connectionLost(err) {
		return fmt.Errorf("%w: %s", store.ErrUnavailable, err.Error())
	}
	return err
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
