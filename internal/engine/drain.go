package engine

import (
	"context"
	"errors"
	"time"

	"github.com/runnel-dev/runnel/internal/apierr"
)

// Drain starts a graceful shutdown of this node: live subscriptions end
// with Unavailable (clients resume from their last position, elsewhere or
// after the restart), worker sessions end (workers register again
// elsewhere or after the restart), and new subscriptions, registrations
// and sessions are refused. Appends, results and other requests keep
// working until Stop, so those in flight commit and are acknowledged.
// Safe to call more than once; Stop calls it. Everything that ends on a
// drain waits on the one draining context.
func (e *Engine) Drain() { e.startDrain() }

// errDraining is the answer to anything long-lived asked of a draining node.
func errDraining() error {
	return apierr.New(apierr.Unavailable, "engine is shutting down; resume after your last position (on another node, or once it is back)")
}

// refuseWhileDraining returns errDraining once Drain was called.
func (e *Engine) refuseWhileDraining() error {
	if e.draining.Err() != nil {
		return errDraining()
	}
	return nil
}

// subscription admits a subscription of p: it refuses it while draining or
// over the limits, and returns a context that also ends when the node
// drains, and a function to call when the subscription is over. finish
// turns the subscription's error into Unavailable when the drain ended it.
func (e *Engine) subscription(ctx context.Context, p Principal) (sctx context.Context, finish func(error) error, err error) {
	if err := e.refuseWhileDraining(); err != nil {
		return nil, nil, err
	}
	release, err := e.subscribers.acquire(p)
	if err != nil {
		return nil, nil, err
	}
	sctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(e.draining, func() { cancel(nil) })
	unwatch := e.tokens.watch(p, cancel) // ended if p's token is revoked
	// A stream lasts no longer than its token: a metadata subscription
	// never ends by itself, and would otherwise outlive it for good.
	cancelExpiry := func() {}
	if !p.ExpiresAt.IsZero() {
		sctx, cancelExpiry = context.WithDeadlineCause(sctx, p.ExpiresAt, errTokenExpiredCause)
	}
	return sctx, func(err error) error {
		expired := errors.Is(context.Cause(sctx), errTokenExpiredCause)
		stop()
		unwatch()
		cause := context.Cause(sctx)
		cancelExpiry()
		cancel(nil)
		release()
		switch {
		case err != nil && ctx.Err() == nil && errors.Is(cause, errTokenRevoked):
			return errTokenRevoked
		case err != nil && ctx.Err() == nil && e.draining.Err() != nil:
			return errDraining()
		case err != nil && ctx.Err() == nil && expired:
			return TokenExpired(p.ExpiresAt)
		}
		return err
	}, nil
}

// errTokenExpiredCause ends a subscription's context at its token's expiry.
var errTokenExpiredCause = errors.New("token expired")

// TokenExpired is the error that ends a stream at its token's expiry:
// Unauthenticated, with a message saying to mint a new token and resume.
func TokenExpired(at time.Time) error {
	return apierr.New(apierr.Unauthenticated, "token expired at %s: get a new token and resume after the last position received",
		at.UTC().Format(time.RFC3339))
}
