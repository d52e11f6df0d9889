package eventlog_test

import (
	"context"
	"errors"
	"github.com/runnel-dev/runnel/internal/store"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/eventlog"
)

// fakeNotifier is a store.Notifier whose wake-ups the test sends.
type fakeNotifier struct {
	wakes  chan struct{}
	errs   chan error
	exited chan struct{}
}

func (n *fakeNotifier) Listen(ctx context.Context, h store.Notifications) {
	defer close(n.exited)
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.wakes:
			h.Events()
		case err := <-n.errs:
			h.Error(err)
		}
	}
}

func TestListener(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		notifier *fakeNotifier
		hub      *eventlog.Hub
		woken    chan struct{}
		listener *eventlog.Listener
	}
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		b := &testBundle{
			notifier: &fakeNotifier{wakes: make(chan struct{}), errs: make(chan error), exited: make(chan struct{})},
			hub:      eventlog.NewHub(),
			woken:    make(chan struct{}, 10),
		}
		b.listener = eventlog.NewListener(b.notifier, b.hub, eventlog.ListenerConfig{
			WakeFunc: func() { b.woken <- struct{}{} },
		})
		return b
	}
	waitClosed := func(t *testing.T, ch <-chan struct{}, what string) {
		t.Helper()
		select {
		case <-ch:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: not closed", what)
		}
	}

	t.Run("WakesEveryWaiterAndCallsWakeFunc", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		require.NoError(t, b.listener.Start(t.Context()))
		t.Cleanup(b.listener.Stop)
		run, anyRun := b.hub.Wait("r1"), b.hub.WaitAny()
		b.notifier.wakes <- struct{}{}
		waitClosed(t, run, "run waiter")
		waitClosed(t, anyRun, "any waiter")
		waitClosed(t, b.woken, "WakeFunc")
		// Errors are reported and listening goes on.
		b.notifier.errs <- errors.New("connection reset")
		b.notifier.wakes <- struct{}{}
		waitClosed(t, b.woken, "WakeFunc after an error")
	})

	t.Run("StopWaitsForListen", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		require.NoError(t, b.listener.Start(t.Context()))
		require.Error(t, b.listener.Start(t.Context()), "second Start")
		b.listener.Stop()
		select {
		case <-b.notifier.exited:
		default:
			t.Fatal("Stop returned before Listen did")
		}
		b.listener.Stop() // twice: no-op
	})

	t.Run("StopBeforeStart", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.listener.Stop()
	})
}
