package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/runnel-dev/runnel/internal/apierr"
	"github.com/runnel-dev/runnel/internal/eventlog"
	"github.com/runnel-dev/runnel/internal/store"
)

// Child runs and event triggers.
//
// # Spawn keys
//
// A spawn names a key that identifies it within the parent attempt (the SDK
// numbers an attempt's spawns 0, 1, 2, …). The engine stores the child with
// the spawn key "<parent attempt>:<key>", unique per parent step run, so:
//
//   - the same request sent again (after a lost reply, or a retry of a
//     transient failure) returns the child it created: one run, not two;
//   - a retried parent step (a new attempt) numbers its spawns from 0 again
//     and gets fresh children, because its keys carry the new attempt: the
//     failed attempt's children are not adopted, so a retry never sees
//     results it did not ask for. (They are left running; they end on their
//     own or when the parent run is cancelled or fails.)
//
// An empty key opts out: every such spawn creates a run.
//
// # Cancellation cascade
//
// When a run ends without completing (cancelled, failed, timed out), its
// unfinished children are cancelled, and theirs, recursively. Each child is
// cancelled in a transaction of its own, after the parent's has committed:
// a transaction never locks a child while it holds its parent, so the lock
// order (one run, then its step runs, then the log) still holds. A spawn
// locks the parent run and checks the spawning attempt is running, so a
// child is either committed before the parent ends (and the cascade, which
// reads after that commit, finds it) or refused.
//
// CancelRun cascades before it returns. Failures and timeouts wake a sweep
// (the maintenance loop's) that cancels every unfinished child of an ended
// parent; it also runs every orphanSweepTicks maintenance ticks, so a
// cascade cut short by a crash or a lost database connection completes
// later, on any node.
// A run that completes leaves its children alone: a step may start
// children it does not wait for.

// maxSpawnKeyLen bounds the key a spawn names.
const maxSpawnKeyLen = 256

// orphanSweepTicks: the sweep for orphaned children runs on every this many
// maintenance ticks (and at once when a run fails or times out); it only
// catches up on cascades cut short, so it need not run on every tick.
const orphanSweepTicks = 10

// maxSweepRounds bounds one sweep: each round cancels a batch of orphans,
// whose own children become orphans for the next round.
const maxSweepRounds = 64

// SpawnRun starts a child run of workflow from a running step attempt: the
// child records the parent run and step run and inherits the parent run's
// metadata, meta merged on top. A spawn repeated with the same non-empty
// key by the same attempt returns the child it created (see "Spawn keys"
// above). Errors: NotFound for an unknown step run or workflow,
// FailedPrecondition when the attempt is no longer running, InvalidArgument
// for bad input, metadata or key, or a key already used for another
// workflow.
func (e *Engine) SpawnRun(ctx context.Context, tenantID, parentStepRunID string, parentAttempt int,
	workflow string, input []byte, meta map[string]string, key string,
) (string, error) {
	if parentStepRunID == "" || parentAttempt < 1 {
		return "", apierr.New(apierr.InvalidArgument, "a spawn needs the parent step run and its attempt (from 1)")
	}
	if err := checkTexts("spawn key", key, "workflow name", workflow, "parent step run id", parentStepRunID); err != nil {
		return "", err
	}
	if len(key) > maxSpawnKeyLen {
		return "", apierr.New(apierr.InvalidArgument, "spawn key must be valid UTF-8 of at most %d bytes", maxSpawnKeyLen)
	}
	input, err := normalizeInput(input)
	if err != nil {
		return "", err
	}
	if err := validateMetadata(meta); err != nil {
		return "", err
	}
	sr, err := e.store.GetStepRun(ctx, parentStepRunID)
	if err != nil || sr.TenantID != tenantID {
		return "", notFound(orNotFound(err), "unknown step run %s", parentStepRunID)
	}
	def, err := e.loadWorkflowDef(ctx, tenantID, workflow)
	if err != nil {
		return "", err
	}
	spawnKey := ""
	if key != "" {
		spawnKey = strconv.Itoa(parentAttempt) + ":" + key
	}

	var childID string
	var created bool
	err = e.store.Write(ctx, func(tx store.Tx) error {
		childID, created = "", false
		// The parent run, then the spawning step run: the lock order. The
		// lock also orders this spawn against the parent's end (see
		// "Cancellation cascade").
		parent, err := tx.GetRunForUpdate(ctx, tenantID, sr.RunID)
		if err != nil {
			return notFound(err, "unknown run %s", sr.RunID)
		}
		step, err := tx.GetStepRunForUpdate(ctx, parentStepRunID)
		if err != nil {
			return notFound(err, "unknown step run %s", parentStepRunID)
		}
		if err := eventlog.CheckAttemptRunning(step, parentAttempt); err != nil {
			return err
		}
		if parent.Status.Terminal() {
			return apierr.New(apierr.FailedPrecondition,
				"run %s is %s: step run %s cannot spawn runs", sr.RunID, parent.Status, parentStepRunID)
		}
		if spawnKey != "" {
			existing, err := tx.GetChildRunBySpawnKey(ctx, parentStepRunID, spawnKey)
			switch {
			case err == nil && existing.Workflow != workflow:
				return apierr.New(apierr.InvalidArgument,
					"spawn key %q of step run %s attempt %d already started a run of %q, not %q",
					key, parentStepRunID, parentAttempt, existing.Workflow, workflow)
			case err == nil:
				childID = existing.ID
				return nil
			case !errors.Is(err, store.ErrNotFound):
				return fmt.Errorf("look up spawn key %q: %w", key, err)
			}
		}
		merged := maps.Clone(parent.Metadata)
		if merged == nil {
			merged = map[string]string{}
		}
		maps.Copy(merged, meta)
		if err := validateMetadata(merged); err != nil {
			return apierr.New(apierr.InvalidArgument, "metadata inherited from run %s plus the child's own: %s", parent.ID, apierr.Message(err))
		}
		run, steps := newRunRows(runSpec{
			TenantID: tenantID, Input: input, Metadata: merged,
			ParentRunID: parent.ID, ParentStepRunID: parentStepRunID, SpawnKey: spawnKey,
		}, def, e.now())
		if err := insertRunRows(ctx, tx, run, steps); err != nil {
			return err
		}
		childID, created = run.ID, true
		return nil
	})
	if err != nil {
		return "", err
	}
	if created {
		e.metrics.RunTriggered(workflow)
		e.log.Debug("child run spawned", "run_id", childID, "workflow", workflow,
			"parent_run_id", sr.RunID, "parent_step_run_id", parentStepRunID, "attempt", parentAttempt, "key", key)
		e.wakeDispatcher()
	}
	return childID, nil
}

// ListChildRuns returns the runs spawned from a run's steps, oldest first.
// Errors: NotFound for an unknown run.
func (e *Engine) ListChildRuns(ctx context.Context, tenantID, runID string) ([]store.Run, error) {
	if err := CheckText("run id", runID); err != nil {
		return nil, err
	}
	if _, err := e.store.GetRun(ctx, tenantID, runID); err != nil {
		return nil, notFound(err, "unknown run %s", runID)
	}
	runs, err := e.store.ListChildRuns(ctx, tenantID, runID)
	if err != nil {
		return nil, fmt.Errorf("list children of run %s: %w", runID, err)
	}
	return runs, nil
}

// cancelDescendants cancels the unfinished children of a run that ended
// without completing, then theirs, breadth first, each child in a
// transaction of its own.
func (e *Engine) cancelDescendants(ctx context.Context, runID string) error {
	queue := []string{runID}
	for len(queue) > 0 {
		parentID := queue[0]
		queue = queue[1:]
		var children []store.Run
		err := e.store.Write(ctx, func(tx store.Tx) error {
			var err error
			children, err = tx.ListActiveChildRuns(ctx, parentID)
			return err
		})
		if err != nil {
			return fmt.Errorf("list children of run %s: %w", parentID, err)
		}
		for _, c := range children {
			if _, err := e.cancelChild(ctx, c, "parent run "+parentID+" cancelled"); err != nil {
				return err
			}
			queue = append(queue, c.ID)
		}
	}
	return nil
}

// cancelChild cancels one child run unless it finished meanwhile, and
// reports whether it did.
func (e *Engine) cancelChild(ctx context.Context, child store.Run, reason string) (bool, error) {
	var rs *runState
	err := e.store.Write(ctx, func(tx store.Tx) error {
		rs = nil
		locked, err := lockRun(ctx, tx, child.TenantID, child.ID, e.now())
		if err != nil {
			return err
		}
		if locked.run.Status.Terminal() {
			return nil
		}
		locked.finishRun(store.RunCancelled, nil, reason)
		rs = locked
		return rs.save(ctx, tx)
	})
	if err != nil {
		return false, fmt.Errorf("cancel child run %s: %w", child.ID, err)
	}
	e.afterCommit(rs)
	return rs != nil, nil
}

// failedNow reports whether the transition failed the run or timed it out,
// so its children must be cancelled. Cancellations cascade by themselves
// (CancelRun, cancelDescendants).
func (rs *runState) failedNow() bool {
	return rs.runDirty && (rs.run.Status == store.RunFailed || rs.run.Status == store.RunTimedOut)
}

// kickSweep wakes the orphan sweep without waiting for it.
func (e *Engine) kickSweep() {
	select {
	case e.sweepKick <- struct{}{}:
	default:
	}
}

// sweepOrphans cancels unfinished children of runs that failed, were
// cancelled or timed out, until none is left (grandchildren become orphans
// when their parents are cancelled, and are found in the next round).
func (e *Engine) sweepOrphans(ctx context.Context) error {
	for range maxSweepRounds {
		var orphans []store.Run
		err := e.store.Write(ctx, func(tx store.Tx) error {
			var err error
			orphans, err = tx.ListOrphanedChildRuns(ctx, maintenanceBatch)
			return err
		})
		if err != nil {
			return fmt.Errorf("list orphaned child runs: %w", err)
		}
		if len(orphans) == 0 {
			return nil
		}
		for _, o := range orphans {
			reason := "parent run " + o.ParentRunID + " ended"
			if p, err := e.store.GetRun(ctx, o.TenantID, o.ParentRunID); err == nil {
				reason = "parent run " + o.ParentRunID + " " + string(p.Status)
			}
			if _, err := e.cancelChild(ctx, o, reason); err != nil {
				return err
			}
		}
	}
	return nil
}

// Event payload limits are those of a run input (it becomes one).

// PushEvent triggers a run of every workflow of the tenant registered
// OnEvents with key, the payload (JSON) as input and meta as metadata, all
// in one transaction, and returns their run ids in workflow name order;
// none (and no error) when no workflow listens to key. Errors:
// InvalidArgument naming a bad key, payload or metadata.
func (e *Engine) PushEvent(ctx context.Context, tenantID, key string, payload []byte, meta map[string]string) ([]string, error) {
	if err := validateName("event key", key); err != nil {
		return nil, err
	}
	input, err := normalizeInput(payload)
	if err != nil {
		return nil, apierr.New(apierr.InvalidArgument, "event %q payload: %s", key, apierr.Message(err))
	}
	if err := validateMetadata(meta); err != nil {
		return nil, err
	}
	wfs, err := e.store.ListWorkflows(ctx, tenantID)
	if err != nil {
		return nil, fmt.Errorf("list workflows: %w", err)
	}
	slices.SortFunc(wfs, func(a, b store.Workflow) int { return strings.Compare(a.Name, b.Name) })
	now := e.now()
	type newRun struct {
		run   store.Run
		steps []store.StepRun
	}
	var runs []newRun
	for _, w := range wfs {
		if !slices.Contains(w.OnEvents, key) {
			continue
		}
		def, err := decodeWorkflowDef(w.Definition)
		if err != nil {
			return nil, err
		}
		run, steps := newRunRows(runSpec{TenantID: tenantID, Input: input, Metadata: maps.Clone(meta)}, def, now)
		runs = append(runs, newRun{run, steps})
	}
	ids := make([]string, 0, len(runs))
	if len(runs) == 0 {
		e.log.Debug("event pushed; no workflow listens to it", "key", key)
		return ids, nil
	}
	err = e.store.Write(ctx, func(tx store.Tx) error {
		for _, r := range runs {
			if err := insertRunRows(ctx, tx, r.run, r.steps); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("trigger runs for event %q: %w", key, err)
	}
	for _, r := range runs {
		ids = append(ids, r.run.ID)
		e.metrics.RunTriggered(r.run.Workflow)
	}
	e.log.Debug("event pushed", "key", key, "runs", ids)
	e.wakeDispatcher()
	return ids, nil
}
