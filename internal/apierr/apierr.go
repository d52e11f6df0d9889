// Package apierr is the engine's coded error: the engine says what kind of
// failure happened, and each edge (RPC, HTTP) maps the code to its own
// status once.
package apierr

import (
	"errors"
	"fmt"
	"time"
)

// Code classifies an error for clients.
type Code string

const (
	InvalidArgument    Code = "invalid_argument"    // bad input; nothing changed
	NotFound           Code = "not_found"           // unknown run, workflow, worker, ...
	AlreadyExists      Code = "already_exists"      // conflict with a stored row
	FailedPrecondition Code = "failed_precondition" // the state does not allow it (stale attempt, finished run)
	Unauthenticated    Code = "unauthenticated"     // no token, or a bad or expired one
	PermissionDenied   Code = "permission_denied"   // token valid but out of scope
	ResourceExhausted  Code = "resource_exhausted"  // a limit was hit (payload size, rate)
	Unavailable        Code = "unavailable"         // shutting down or store unreachable; retry
	Internal           Code = "internal"
)

// Error is an error with a code and a message meant for the client.
type Error struct {
	Code    Code
	Message string
	Err     error // optional cause, not shown to clients
	// RetryAfter, on a ResourceExhausted error, says the limit is a count or
	// a rate that frees up with time (too many subscribers, mints too fast)
	// rather than a size the request itself exceeds: the client may try the
	// same request again after this long. HTTP answers it with 429 and a
	// Retry-After header, instead of 413.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// New returns a coded error with a formatted message.
func New(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the code of the first *Error in err's chain, Internal if
// there is none.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Internal
}

// Message returns the client-facing message: the coded error's own message,
// or a generic one for uncoded (internal) errors, whose details stay in logs.
func Message(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// RetryAfterOf returns the RetryAfter of the first *Error in err's chain (0
// if none says).
func RetryAfterOf(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}
