package process_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/process"
)

const waitFor = 30 * time.Second

func TestProcessLifecycle(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	p, err := process.Start(process.Config{Program: "sh", Args: []string{"-c", `echo "up $X" >&2; exec sleep 60`}, Env: []string{"X=1"}})
	require.NoError(t, err)
	require.NoError(t, p.WaitFor(ctx, "up 1"))
	require.Equal(t, []string{"up 1"}, p.Lines())
	require.NoError(t, p.Pause())
	require.NoError(t, p.Resume())
	_, err = p.Restart()
	require.Error(t, err, "still running")
	require.NoError(t, p.Kill())
	require.Equal(t, -1, p.ExitCode())
	require.NoError(t, p.Kill(), "twice")

	q, err := p.Restart()
	require.NoError(t, err)
	require.NoError(t, q.WaitFor(ctx, "up 1"))
	require.ErrorContains(t, q.Stop(waitFor), "terminated") // sleep ends on SIGTERM
	require.Equal(t, q.Stop(waitFor), q.Err(), "twice")

	r, err := process.Start(process.Config{Program: "sh", Args: []string{"-c", "exit 3"}})
	require.NoError(t, err)
	require.ErrorContains(t, r.WaitFor(ctx, "never"), "exited")
	require.Equal(t, 3, r.ExitCode())
}

func TestWaitReady(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	var ready atomic.Bool
	asked := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.Equal(t, "/readyz", r.URL.Path)
		select {
		case asked <- struct{}{}:
		default:
		}
		if !ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	p, err := process.Start(process.Config{Program: "sleep", Args: []string{"60"}})
	require.NoError(t, err)
	defer p.Kill()
	done := make(chan error, 1)
	go func() { done <- p.WaitReady(ctx, srv.URL) }()
	<-asked // not ready yet
	ready.Store(true)
	require.NoError(t, <-done)

	// A process that exits first fails the wait.
	ready.Store(false)
	q, err := process.Start(process.Config{Program: "true"})
	require.NoError(t, err)
	require.ErrorContains(t, q.WaitReady(ctx, srv.URL), "exited")
}
