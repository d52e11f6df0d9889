// Package storetest is the conformance suite of store.Store: every
// implementation runs Exercise against real databases, so the engine can
// rely on the behaviour documented in package store whatever the dialect.
package storetest

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/store"
)

// Opener returns a new, empty store for one (sub)test, opened with hook as
// its commit hook (nil: none), and closes it when the test ends
// (t.Cleanup).
type Opener func(t *testing.T, hook store.CommitHook) store.Store

// Exercise runs the conformance suite. Every subtest runs in parallel on a
// store of its own.
func Exercise(t *testing.T, open func(t *testing.T, hook store.CommitHook) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open Opener)
	}{
		{"TenantsAndTokens", testTenantsAndTokens},
		{"TokenRevocation", testTokenRevocation},
		{"Workflows", testWorkflows},
		{"Runs", testRuns},
		{"CountActiveRuns", testCountActiveRuns},
		{"ListRuns", testListRuns},
		{"ListRunsLimits", testListRunsLimits},
		{"RunMetadata", testRunMetadata},
		{"TenantIsolation", testTenantIsolation},
		{"StepRuns", testStepRuns},
		{"ListClaimableStepRuns", testListClaimableStepRuns},
		{"ClaimStepRunsConcurrently", testClaimStepRunsConcurrently},
		{"ClaimStepRun", testClaimStepRun},
		{"ListTimedOutStepRuns", testListTimedOutStepRuns},
		{"ListStepRunsOfWorker", testListStepRunsOfWorker},
		{"StepAttempts", testStepAttempts},
		{"Workers", testWorkers},
		{"AppendAndReadEvents", testAppendAndReadEvents},
		{"NamedStreams", testNamedStreams},
		{"ReadEventsMaxBytes", testReadEventsMaxBytes},
		{"LargeAndBinaryPayloads", testLargeAndBinaryPayloads},
		{"CommitHook", testCommitHook},
		{"Rollback", testRollback},
		{"LogID", testLogID},
		{"NotFound", testNotFound},
		{"ConcurrentAppendAndRead", testConcurrentAppendAndRead},
		{"MetadataEvents", testMetadataEvents},
		{"Children", testChildren},
		{"Retention", testRetention},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open)
		})
	}
}

// newID returns a UUIDv7: IDs made later sort after earlier ones, as the
// engine's do (ListRuns pages on that).
func newID() string {
	return uuid.Must(uuid.NewV7()).String()
}

// base is an arbitrary instant with no sub-microsecond part, as stores keep
// microseconds.
var base = time.UnixMicro(1_767_225_600_123_456).UTC()

// at returns base plus sec seconds.
func at(sec int) time.Time {
	return base.Add(time.Duration(sec) * time.Second)
}

// write runs fn in a transaction and requires it to commit.
func write(t testing.TB, s store.Store, fn func(tx store.Tx) error) {
	t.Helper()
	require.NoError(t, s.Write(context.Background(), fn))
}

// norm makes results comparable across dialects: times in UTC and empty
// slices and maps as nil (the contract does not tell nil from empty).
func norm[T any](v T) T {
	rv := reflect.ValueOf(&v).Elem()
	normValue(rv)
	return v
}

var timeType = reflect.TypeFor[time.Time]()

func normValue(v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		if v.Type() == timeType {
			tm := v.Interface().(time.Time)
			if tm.IsZero() {
				v.Set(reflect.ValueOf(time.Time{}))
			} else {
				v.Set(reflect.ValueOf(tm.UTC()))
			}
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				normValue(v.Field(i))
			}
		}
	case reflect.Slice:
		if v.Len() == 0 {
			v.SetZero()
			return
		}
		if k := v.Type().Elem().Kind(); k == reflect.Struct || k == reflect.Slice || k == reflect.Map {
			for i := range v.Len() {
				normValue(v.Index(i))
			}
		}
	case reflect.Map:
		if v.Len() == 0 {
			v.SetZero()
		}
	}
}

// fixture is a tenant with a workflow and one run, the parents of most rows.
type fixture struct {
	tenant store.Tenant
	run    store.Run
}

func newTenant(t testing.TB, s store.Store, name string) store.Tenant {
	t.Helper()
	tn := store.Tenant{ID: newID(), Name: name, CreatedAt: at(0)}
	write(t, s, func(tx store.Tx) error { return tx.CreateTenant(context.Background(), tn) })
	return tn
}

func newRun(tenantID, workflow string) store.Run {
	return store.Run{
		ID:        newID(),
		TenantID:  tenantID,
		Workflow:  workflow,
		Status:    store.RunQueued,
		Input:     []byte(`{"n":1}`),
		CreatedAt: at(1),
	}
}

func insertRuns(t testing.TB, s store.Store, runs ...store.Run) {
	t.Helper()
	write(t, s, func(tx store.Tx) error {
		for _, r := range runs {
			if err := tx.InsertRun(context.Background(), r); err != nil {
				return err
			}
		}
		return nil
	})
}

func newFixture(t testing.TB, s store.Store) fixture {
	t.Helper()
	tn := newTenant(t, s, "tenant-"+newID())
	r := newRun(tn.ID, "wf")
	insertRuns(t, s, r)
	return fixture{tenant: tn, run: r}
}

// newStep returns a queued step run of the fixture's run.
func (f fixture) newStep(name string) store.StepRun {
	return store.StepRun{
		ID:          newID(),
		RunID:       f.run.ID,
		TenantID:    f.tenant.ID,
		Workflow:    f.run.Workflow,
		Step:        name,
		Status:      store.StepQueued,
		AvailableAt: at(10),
		CreatedAt:   at(2),
	}
}

func insertSteps(t testing.TB, s store.Store, steps ...store.StepRun) {
	t.Helper()
	write(t, s, func(tx store.Tx) error { return tx.InsertStepRuns(context.Background(), steps) })
}

func sortSteps(steps []store.StepRun) []store.StepRun {
	slices.SortFunc(steps, func(a, b store.StepRun) int { return strings.Compare(a.ID, b.ID) })
	return steps
}

func ids[T any](rows []T, id func(T) string) []string {
	out := make([]string, 0, len(rows))
	for _, r := range rows {
		out = append(out, id(r))
	}
	return out
}

func stepID(s store.StepRun) string { return s.ID }
func runID(r store.Run) string      { return r.ID }
