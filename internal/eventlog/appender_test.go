package eventlog_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/eventlog"
	"github.com/runnel-dev/runnel/internal/store"
	"github.com/runnel-dev/runnel/internal/store/postgres"
	"github.com/runnel-dev/runnel/internal/store/sqlite"
	"github.com/runnel-dev/runnel/internal/testdb"
)

func openStore(tb testing.TB, kind string, hook store.CommitHook) store.Store {
	tb.Helper()
	ctx := context.Background()
	var (
		st  store.Store
		err error
	)
	opts := store.Options{CommitHook: hook}
	switch kind {
	case "sqlite":
		st, err = sqlite.Open(ctx, testdb.SQLitePath(tb), opts)
	case "postgres":
		st, err = postgres.Open(ctx, testdb.PostgresURL(tb), opts)
	}
	require.NoError(tb, err)
	tb.Cleanup(func() { st.Close() })
	return st
}

// runningSteps creates a run with n running step runs (attempt 1).
func runningSteps(tb testing.TB, st store.Store, n int) []store.StepRun {
	tb.Helper()
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	tenant := store.Tenant{ID: uuid.NewString(), Name: "t-" + uuid.NewString()[:8], CreatedAt: now}
	run := store.Run{ID: uuid.Must(uuid.NewV7()).String(), TenantID: tenant.ID, Workflow: "wf", Status: store.RunRunning,
		Input: []byte("{}"), Metadata: map[string]string{}, CreatedAt: now, StartedAt: now}
	steps := make([]store.StepRun, n)
	for i := range steps {
		steps[i] = store.StepRun{ID: uuid.Must(uuid.NewV7()).String(), RunID: run.ID, TenantID: tenant.ID, Workflow: "wf",
			Step: fmt.Sprintf("s%d", i), Status: store.StepRunning, Attempt: 1, WorkerID: "w",
			AvailableAt: now, CreatedAt: now, StartedAt: now}
	}
	require.NoError(tb, st.Write(ctx, func(tx store.Tx) error {
		if err := tx.CreateTenant(ctx, tenant); err != nil {
			return err
		}
		if err := tx.InsertRun(ctx, run); err != nil {
			return err
		}
		return tx.InsertStepRuns(ctx, steps)
	}))
	return steps
}

func TestAppenderStoresInOrderAndRefusesStaleAttempts(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			st := openStore(t, kind, nil)
			steps := runningSteps(t, st, 4)
			a := eventlog.NewAppender(st, eventlog.AppenderConfig{})
			require.NoError(t, a.Start(context.Background()))
			defer a.Stop()

			ctx := context.Background()
			const perStep = 500
			var wg sync.WaitGroup
			for _, s := range steps {
				wg.Go(func() {
					for seq := int64(1); seq <= perStep; seq += 5 {
						put := eventlog.StreamPut{TenantID: s.TenantID, StepRunID: s.ID, Attempt: 1, FirstSeq: seq}
						for i := range int64(5) {
							put.Payloads = append(put.Payloads, fmt.Appendf(nil, "%s-%d", s.Step, seq+i))
						}
						if err := a.Put(ctx, put); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			events, err := st.ReadEvents(ctx, store.ReadEventsParams{TenantID: steps[0].TenantID, RunID: steps[0].RunID, Limit: 10000})
			require.NoError(t, err)
			require.Len(t, events, perStep*len(steps))
			next := map[string]int{}
			for i, ev := range events {
				if i > 0 {
					require.Greater(t, ev.Position, events[i-1].Position)
				}
				next[ev.Step]++
				require.Equal(t, fmt.Sprintf("%s-%d", ev.Step, next[ev.Step]), string(ev.Payload))
			}

			// Another tenant's put, and a put for an attempt that is not the
			// running one, are refused and store nothing.
			err = a.Put(ctx, eventlog.StreamPut{TenantID: "other", StepRunID: steps[0].ID, Attempt: 1, FirstSeq: perStep + 1, Payloads: [][]byte{[]byte("x")}})
			require.ErrorContains(t, err, "unknown step run")
			err = a.Put(ctx, eventlog.StreamPut{TenantID: steps[0].TenantID, StepRunID: steps[0].ID, Attempt: 2, FirstSeq: 1, Payloads: [][]byte{[]byte("x")}})
			require.ErrorContains(t, err, "no longer running")
			after, err := st.ReadEvents(ctx, store.ReadEventsParams{TenantID: steps[0].TenantID, RunID: steps[0].RunID, After: events[len(events)-1].Position, Limit: 10})
			require.NoError(t, err)
			require.Empty(t, after)
		})
	}
}

// BenchmarkAppender measures the append path: stream events/s durably
// stored through the group-commit appender, from 1 and 16 concurrent steps,
// each put carrying 1 or 64 events of 100 bytes.
func BenchmarkAppender(b *testing.B) {
	for _, kind := range []string{"sqlite", "postgres"} {
		for _, steps := range []int{1, 16} {
			for _, batch := range []int{1, 64} {
				b.Run(fmt.Sprintf("%s/steps=%d/batch=%d", kind, steps, batch), func(b *testing.B) {
					benchmarkAppender(b, kind, steps, batch)
				})
			}
		}
	}
}

func benchmarkAppender(b *testing.B, kind string, nsteps, batch int) {
	st := openStore(b, kind, nil)
	steps := runningSteps(b, st, nsteps)
	a := eventlog.NewAppender(st, eventlog.AppenderConfig{})
	require.NoError(b, a.Start(context.Background()))
	defer a.Stop()
	payload := make([]byte, 100)
	for i := range payload {
		payload[i] = 'a' + byte(i%26)
	}
	payloads := make([][]byte, batch)
	for i := range payloads {
		payloads[i] = payload
	}
	ctx := context.Background()
	puts := b.N/batch + 1
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w, s := range steps {
		n := puts / nsteps
		if w < puts%nsteps {
			n++
		}
		wg.Go(func() {
			seq := int64(1)
			for range n {
				if err := a.Put(ctx, eventlog.StreamPut{TenantID: s.TenantID, StepRunID: s.ID, Attempt: 1, FirstSeq: seq, Payloads: payloads}); err != nil {
					b.Error(err)
					return
				}
				seq += int64(batch)
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(puts*batch)/time.Since(start).Seconds(), "events/s")
}
