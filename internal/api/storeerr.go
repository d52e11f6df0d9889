package api

import (
	"errors"

	"github.com/runnel-dev/runnel/internal/apierr"
	"github.com/runnel-dev/runnel/internal/store"
)

// codeStoreErr gives a code to a store sentinel that reached an edge
// uncoded: package store knows nothing of codes, so the edges map its
// errors here, once, before choosing a status. The engine codes the store
// errors it expects where it can say more (ErrNotFound becomes "run X not
// found"); what is left is the database itself failing. Coded errors pass
// through unchanged.
func codeStoreErr(err error) error {
	if apierr.CodeOf(err) != apierr.Internal {
		return err
	}
	switch {
	case errors.Is(err, store.ErrUnavailable):
		// A restart or network failure: the request may succeed if made
		// again, so clients retry instead of reporting an internal error.
		return &apierr.Error{Code: apierr.Unavailable, Message: "the database is unreachable; retry", Err: err}
	case errors.Is(err, store.ErrInvalidText):
		return &apierr.Error{Code: apierr.InvalidArgument, Message: store.ErrInvalidText.Error(), Err: err}
	case errors.Is(err, store.ErrRetry):
		// Store.Write retried the transaction a few times already.
		return &apierr.Error{Code: apierr.Unavailable, Message: "too many conflicting writes; retry", Err: err}
	}
	return err
}
