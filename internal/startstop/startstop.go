// Package startstop is the lifecycle of Runnel's long-lived services (the
// engine's appender, dispatcher and maintenance loop, the notification
// listener, subscription feeds): one goroutine started with Start, ended
// and waited for with Stop.
//
// A service keeps a Base and writes its Start and Stop over it:
//
//	func (a *Appender) Start(ctx context.Context) error { return a.svc.Start(ctx, a.loop) }
//	func (a *Appender) Stop()                           { a.svc.Stop() }
package startstop

import (
	"context"
	"errors"
	"sync"
)

// ErrStarted is returned by Start while the service runs.
var ErrStarted = errors.New("service already started")

// Base runs a service's goroutine. The zero value is ready to use; a Base
// must not be copied after first use.
//
// Stop is safe before Start, twice, and from several goroutines at once
// (each waits until the goroutine has returned). After Stop the service
// may be started again.
type Base struct {
	mu sync.Mutex
	// cancel ends the running goroutine's context; nil when not running
	// (never started, or Stop called).
	cancel context.CancelFunc
	// started and stopped belong to the current or next run: closed when
	// it begins and when it has returned. launched is set once a goroutine
	// owns them, so the next Start makes new ones.
	started, stopped chan struct{}
	launched         bool
}

func (b *Base) chansLocked() {
	if b.started == nil {
		b.started, b.stopped = make(chan struct{}), make(chan struct{})
	}
}

// Start runs run in a new goroutine with a context that ends at Stop or
// when ctx ends. ErrStarted if it runs already (Stop first).
func (b *Base) Start(ctx context.Context, run func(ctx context.Context)) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cancel != nil {
		return ErrStarted
	}
	if b.launched {
		b.started, b.stopped = nil, nil
	}
	b.chansLocked()
	b.launched = true
	ctx, b.cancel = context.WithCancel(ctx)
	started, stopped := b.started, b.stopped
	go func() {
		defer close(stopped)
		close(started)
		run(ctx)
	}()
	return nil
}

// Stop ends the goroutine's context and waits until it has returned.
func (b *Base) Stop() {
	b.mu.Lock()
	if !b.launched {
		b.mu.Unlock()
		return
	}
	cancel, stopped := b.cancel, b.stopped
	b.cancel = nil
	b.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	<-stopped
}

// Started returns a channel closed once the goroutine of the current (or
// next) run has begun.
func (b *Base) Started() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.chansLocked()
	return b.started
}

// Stopped returns a channel closed once the goroutine of the current (or
// next) run has returned: after Stop, or when the run ended by itself.
func (b *Base) Stopped() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.chansLocked()
	return b.stopped
}
