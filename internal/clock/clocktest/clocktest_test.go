package clocktest_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/clock/clocktest"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestFakeTimersFireInDeadlineOrder(t *testing.T) {
	t.Parallel()
	f := clocktest.NewFake(t0)
	late, early := f.NewTimer(2*time.Second), f.NewTimer(time.Second)
	tick := f.NewTicker(700 * time.Millisecond)
	require.Equal(t, 3, f.Timers())

	f.Advance(999 * time.Millisecond)
	require.Equal(t, t0.Add(700*time.Millisecond), <-tick.C())
	requireNone(t, early.C(), late.C(), tick.C())

	f.Advance(time.Millisecond)
	require.Equal(t, t0.Add(time.Second), <-early.C())
	require.False(t, early.Stop(), "fired timers are disarmed")

	// Two ticks are due, the reader took neither: one is kept, as time.Ticker.
	f.Advance(time.Second)
	require.Equal(t, t0.Add(2*time.Second), <-late.C())
	require.Equal(t, t0.Add(1400*time.Millisecond), <-tick.C())
	requireNone(t, tick.C())
	require.Equal(t, t0.Add(2*time.Second), f.Now())

	tick.Stop()
	require.Equal(t, 0, f.Timers())
}

func TestFakeTimerResetAndStop(t *testing.T) {
	t.Parallel()
	f := clocktest.NewFake(t0)
	tm := f.NewTimer(time.Second)
	f.Advance(time.Second)
	tm.Reset(time.Minute) // drops the unreceived fire
	requireNone(t, tm.C())
	require.True(t, tm.Stop())
	f.Advance(time.Hour)
	requireNone(t, tm.C())

	tm.Reset(0)
	require.Equal(t, f.Now(), <-tm.C())
}

func TestFakeWaitTimers(t *testing.T) {
	t.Parallel()
	f := clocktest.NewFake(t0)
	armed := make(chan struct{})
	go func() {
		tm := f.NewTimer(time.Second)
		close(armed)
		<-tm.C()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, f.WaitTimers(ctx, 1))
	<-armed

	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, f.WaitTimers(ctx, 2), context.Canceled)
}

func requireNone(t *testing.T, chans ...<-chan time.Time) {
	t.Helper()
	for _, c := range chans {
		select {
		case v := <-c:
			t.Fatalf("unexpected fire at %v", v)
		default:
		}
	}
}
