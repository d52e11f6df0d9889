package eventlog_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/eventlog"
	"github.com/runnel-dev/runnel/internal/store"
)

// hookStore runs a function once, right after the first LastRunPosition.
type hookStore struct {
	store.Store
	once  sync.Once
	after func()
}

func (s *hookStore) LastRunPosition(ctx context.Context, tenantID, runID string) (int64, error) {
	pos, err := s.Store.LastRunPosition(ctx, tenantID, runID)
	s.once.Do(s.after)
	return pos, err
}

// A run that ends while its feed starts: the feed must not start out
// marked terminal after a position below the terminal event, or a
// subscriber there would be told the run ended without its last event.
func TestFollowRunEndingWhileFeedStarts(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			hub := eventlog.NewHub()
			st := openStore(t, kind, hub.CommitHook)
			log := newMetaLog(t, st)
			run := log.run(map[string]string{})
			started := log.emit(2, run)
			end := func() {
				ev := []store.Event{{TenantID: run.TenantID, RunID: run.ID, Workflow: run.Workflow, Type: store.EventRunCompleted}}
				require.NoError(t, st.Write(ctx, func(tx store.Tx) error {
					r := run
					r.Status, r.FinishedAt = store.RunCompleted, time.Now()
					if err := tx.UpdateRun(ctx, r); err != nil {
						return err
					}
					return tx.AppendEvents(ctx, ev)
				}))
			}
			r := eventlog.NewReader(&hookStore{Store: st, after: end}, hub)
			var got []store.Event
			fctx, cancel := context.WithTimeout(ctx, waitTimeout)
			defer cancel()
			err := r.Follow(fctx, eventlog.FollowParams{TenantID: run.TenantID, RunID: run.ID, After: started[1].Position},
				func(events []store.Event, _ int64) error {
					got = append(got, events...)
					return nil
				})
			require.NoError(t, err)
			require.Len(t, got, 1)
			require.Equal(t, store.EventRunCompleted, got[0].Type)
		})
	}
}
