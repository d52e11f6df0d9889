package startstop_test

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/startstop"
)

func TestStopBeforeStartAndTwice(t *testing.T) {
	t.Parallel()
	var b startstop.Base
	b.Stop() // before Start: returns at once
	stopped := b.Stopped()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan context.Context, 1)
	require.NoError(t, b.Start(ctx, func(ctx context.Context) { ran <- ctx; <-ctx.Done() }))
	require.ErrorIs(t, b.Start(ctx, func(context.Context) {}), startstop.ErrStarted)
	<-b.Started()
	runCtx := <-ran

	var wg sync.WaitGroup
	for range 3 {
		wg.Go(b.Stop) // each waits for the goroutine
	}
	wg.Wait()
	require.Error(t, runCtx.Err())
	<-stopped // the channel taken before Start is this run's
	b.Stop()
}

func TestRunEndingByItself(t *testing.T) {
	t.Parallel()
	var b startstop.Base
	require.NoError(t, b.Start(context.Background(), func(context.Context) {}))
	<-b.Stopped()
	b.Stop()

	// Started again after Stop, with fresh signals.
	block := make(chan struct{})
	require.NoError(t, b.Start(context.Background(), func(ctx context.Context) { <-block }))
	<-b.Started()
	select {
	case <-b.Stopped():
		t.Fatal("second run reported stopped while running")
	default:
	}
	close(block)
	b.Stop()
}

func TestParentContextEnds(t *testing.T) {
	t.Parallel()
	var b startstop.Base
	ctx, cancel := context.WithCancel(context.Background())
	require.NoError(t, b.Start(ctx, func(ctx context.Context) { <-ctx.Done() }))
	cancel()
	<-b.Stopped()
	b.Stop()
}
