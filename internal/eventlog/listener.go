package eventlog

import (
	"context"
	"log/slog"

	"github.com/runnel-dev/runnel/internal/startstop"
	"github.com/runnel-dev/runnel/internal/store"
)

// ListenerConfig configures a Listener. Zero values are the defaults.
type ListenerConfig struct {
	// Logger reports lost notification connections (default slog.Default).
	Logger *slog.Logger
	// WakeFunc, if set, is called at every wake-up too, after the hub's
	// waiters are woken. The engine wakes its dispatcher with it: another
	// node's commit may have queued work (a completed step unblocks its
	// children) for workers connected here.
	WakeFunc func()
	// TokenRevoked, if set, is called with the id of a token revoked
	// through any node, and with "" after a lost connection (a revocation
	// may have been missed). The engine forgets cached tokens with it, so
	// a revocation holds on every node at once.
	TokenRevoked func(tokenID string)
}

// Listener is the service that wakes this node's subscribers for events
// appended on other engine nodes sharing the database. The hub is fed by
// the store's commit hook, which only sees this node's commits; a store
// that is shared (store.Notifier) says when anyone's commit appended
// events, and the listener then wakes every waiter of the hub, since a
// notification does not say which runs moved. After a lost connection the
// store wakes it once more, so events committed meanwhile are read too.
type Listener struct {
	notifier store.Notifier
	hub      *Hub
	cfg      ListenerConfig
	svc      startstop.Base
}

// NewListener returns a listener that wakes hub on notifier's wake-ups.
func NewListener(notifier store.Notifier, hub *Hub, cfg ListenerConfig) *Listener {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Listener{notifier: notifier, hub: hub, cfg: cfg}
}

// Start listens until Stop or until ctx ends.
func (l *Listener) Start(ctx context.Context) error {
	return l.svc.Start(ctx, func(ctx context.Context) {
		l.notifier.Listen(ctx, store.Notifications{
			Events:       l.wake,
			TokenRevoked: l.cfg.TokenRevoked,
			Error: func(err error) {
				l.cfg.Logger.Warn("listening for event notifications; reconnecting", "err", err)
			},
		})
	})
}

// Stop ends listening and waits until the store's Listen has returned.
// Safe to call twice or before Start.
func (l *Listener) Stop() { l.svc.Stop() }

func (l *Listener) wake() {
	l.hub.NotifyAll()
	if l.cfg.WakeFunc != nil {
		l.cfg.WakeFunc()
	}
}
