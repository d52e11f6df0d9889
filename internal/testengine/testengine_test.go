package testengine_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/testengine"
)

// shared is the engine every test of this binary uses (StartMain).
var shared *testengine.Engine

func TestMain(m *testing.M) {
	e, stop, err := testengine.StartMain()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start engine:", err)
		os.Exit(1)
	}
	shared = e
	code := m.Run()
	if err := stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop engine:", err)
		code = 1
	}
	os.Exit(code)
}

// Tests of one binary share the engine, each with its own workflow.
func TestSharedEngineRunsWorkflows(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"echo-a", "echo-b"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			wf := runnel.NewWorkflow(name).Step("s", func(runnel.Context) (any, error) { return name, nil })
			w, err := shared.Client.NewWorker(name)
			require.NoError(t, err)
			require.NoError(t, w.Register(wf))
			wctx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- w.Run(wctx) }()
			defer func() { stop(); require.NoError(t, <-done) }()
			select {
			case <-w.Ready():
			case err := <-done:
				done <- err // for the deferred wait
				t.Fatalf("worker stopped before registering: %v", err)
			}

			runID, err := shared.Client.Admin().RunWorkflow(ctx, name, nil)
			require.NoError(t, err)
			var last runnel.Event
			for ev, err := range shared.Client.Listener().Stream(ctx, runID) {
				require.NoError(t, err)
				last = ev
			}
			require.True(t, last.Terminal())
			run, err := shared.Client.Admin().GetRun(ctx, runID)
			require.NoError(t, err)
			require.Equal(t, runnel.RunCompleted, run.Status)
		})
	}
}

func TestStartOnEachStore(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			e := testengine.StartOn(t, kind)
			require.NotEmpty(t, e.Token)
			require.Equal(t, e.URL, e.Server.URL())
		})
	}
}
