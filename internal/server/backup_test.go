package server_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel"
	pb "github.com/runnel-dev/runnel/internal/gen/runnel/v1"
	"github.com/runnel-dev/runnel/internal/server"
	"github.com/runnel-dev/runnel/internal/store"
	"github.com/runnel-dev/runnel/internal/store/sqlite"
)

// chatter streams numbered events until release is closed, then completes.
func chatter(release <-chan struct{}) *runnel.Workflow {
	return runnel.NewWorkflow("chatter").Step("s", func(ctx runnel.Context) (any, error) {
		for i := 0; ; i++ {
			if err := ctx.PutStream(fmt.Appendf(nil, "%d", i)); err != nil {
				return nil, err
			}
			select {
			case <-release:
				return nil, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(time.Millisecond):
			}
		}
	})
}

// A backup taken while an engine appends is a consistent snapshot: exactly
// the stored log up to one position, for every run; it refuses to
// overwrite; and an engine started on it serves it, finishes the runs it
// holds, and refuses positions of the original log.
func TestBackupWhileAppending(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	n := startNode(t, "sqlite")
	release := make(chan struct{})
	startWorker(t, n, "w", 4, chatter(release))
	var runIDs []string
	for range 4 {
		id, err := n.client.Admin().RunWorkflow(ctx, "chatter", nil)
		require.NoError(t, err)
		runIDs = append(runIDs, id)
	}
	live := n.srv.Store()
	waitPosition := func(st store.Store, past int64) {
		t.Helper()
		require.Eventually(t, func() bool {
			p, err := st.LastPosition(ctx)
			return err == nil && p > past
		}, 30*time.Second, time.Millisecond, "the log did not pass position %d", past)
	}
	waitPosition(live, 100)

	src := filepath.Join(n.srv.Config().DataDir, "runnel.db")
	out := filepath.Join(t.TempDir(), "backup.db")
	require.NoError(t, sqlite.Backup(ctx, src, out))
	err := sqlite.Backup(ctx, src, out)
	require.ErrorContains(t, err, "the file exists")

	copyStore, err := sqlite.Open(ctx, out, store.Options{})
	require.NoError(t, err)
	snap, err := copyStore.LastPosition(ctx)
	require.NoError(t, err)
	require.Greater(t, snap, int64(100))
	waitPosition(live, snap) // the engine went on appending past the snapshot
	close(release)
	for _, id := range runIDs {
		waitRun(t, n, id)
	}

	// The copy holds exactly the original's events up to snap, run by run
	// (so every run's events are contiguous up to the snapshot), and
	// nothing else.
	admin, err := n.srv.Engine().Authenticate(ctx, n.srv.AdminToken)
	require.NoError(t, err)
	var total int
	for _, id := range runIDs {
		all := readAll(t, live, admin.TenantID, id)
		var want []store.Event
		for _, ev := range all {
			if ev.Position <= snap {
				want = append(want, ev)
			}
		}
		got := readAll(t, copyStore, admin.TenantID, id)
		require.Equal(t, storedEventKeys(want), storedEventKeys(got), "run %s", id)
		total += len(got)
	}
	require.Equal(t, int(snap), total, "the copy's log has a gap or an event of no run")
	require.NoError(t, copyStore.Close())

	// An engine starts on the copy and finishes its runs.
	dataDir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dataDir, "admin.token"), []byte(n.srv.AdminToken+"\n"), 0o600))
	restored := startNode(t, "sqlite", func(cfg *server.Config) {
		cfg.DataDir, cfg.DatabaseURL = dataDir, "sqlite://"+out
		cfg.Engine.HeartbeatTimeout = time.Second // the original's worker is gone: notice soon
	})
	require.False(t, restored.srv.NewAdminToken)
	done := make(chan struct{})
	close(done)
	startWorker(t, restored, "w2", 4, chatter(done))
	for _, id := range runIDs {
		run, _ := waitRun(t, restored, id)
		require.Equal(t, runnel.RunCompleted, run.Status)
	}
	// Positions of the original log mean nothing to the copy.
	stream, err := newRaw(restored, restored.srv.AdminToken).runs.Subscribe(ctx,
		connect.NewRequest(&pb.SubscribeRequest{RunId: runIDs[0], From: n.srv.Engine().Codec().Encode(1)}))
	require.NoError(t, err)
	defer stream.Close()
	require.False(t, stream.Receive())
	requireCode(t, connect.CodeInvalidArgument, stream.Err(), "another event log")
}

func readAll(t *testing.T, st store.Store, tenantID, runID string) []store.Event {
	t.Helper()
	var out []store.Event
	for after := int64(0); ; {
		page, err := st.ReadEvents(context.Background(), store.ReadEventsParams{TenantID: tenantID, RunID: runID, After: after, Limit: 1000})
		require.NoError(t, err)
		if len(page) == 0 {
			return out
		}
		out = append(out, page...)
		after = page[len(page)-1].Position
	}
}

func storedEventKeys(events []store.Event) []string {
	out := make([]string, len(events))
	for i, ev := range events {
		out[i] = fmt.Sprintf("%d %s %d %s", ev.Position, ev.Type, ev.Attempt, ev.Payload)
	}
	return out
}
