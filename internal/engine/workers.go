package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/runnel-dev/runnel/internal/apierr"
	"github.com/runnel-dev/runnel/internal/eventlog"
	"github.com/runnel-dev/runnel/internal/metrics"
	"github.com/runnel-dev/runnel/internal/store"
)

const maxSlots = 10000

// Message is what the engine sends a connected worker: one of its fields is set.
type Message struct {
	Assignment   *Assignment
	Cancellation *Cancellation
}

// Assignment tells a worker to run one attempt of a step run.
type Assignment struct {
	RunID         string
	StepRunID     string
	Workflow      string
	Step          string
	Attempt       int
	Input         []byte
	Metadata      map[string]string
	ParentOutputs map[string][]byte
	TimeoutMs     int64
}

// Cancellation tells a worker to stop an attempt.
type Cancellation struct {
	StepRunID string
	Attempt   int
	Reason    string
}

// session is a worker connected to this node through Listen.
type session struct {
	workerID  string
	tenantID  string
	name      string
	userAgent string // of the Listen request: which SDK, for the workers page
	workflows []string
	slots     int
	// connectedAt is when the session opened; heartbeatAt the last
	// heartbeat this node saw (guarded by Engine.mu).
	connectedAt time.Time
	heartbeatAt time.Time
	out         chan Message
	// running maps the step runs assigned to this worker and not yet
	// ended to their attempt; guarded by Engine.mu.
	running map[string]int
	broken  chan struct{} // closed to end the Listen call
	closed  bool          // guarded by Engine.mu
}

// AttemptRef names one attempt of a step run.
type AttemptRef struct {
	StepRunID string
	Attempt   int
}

// RegisterWorkerParams registers a worker connection.
type RegisterWorkerParams struct {
	TenantID  string
	Name      string
	Slots     int
	Workflows []WorkflowDef
	// PreviousWorkerID is the id this worker had before it reconnected, and
	// Running the attempts it still runs under that id: those still running
	// on the previous worker are moved to the new one (resumed); the
	// previous worker's other running attempts are re-queued at once.
	PreviousWorkerID string
	Running          []AttemptRef
}

// RegisteredWorker is the answer to RegisterWorker.
type RegisteredWorker struct {
	WorkerID string
	// Resumed lists the attempts of RegisterWorkerParams.Running now
	// attached to WorkerID; the worker abandons the others.
	Resumed []AttemptRef
}

// RegisterWorker validates and stores the worker's workflow definitions,
// records the worker under a new id, and re-attaches the attempts a
// reconnecting worker still runs (see "Worker sessions" in
// docs/architecture.md). The new id (rather than the previous one) makes a
// stale session of the previous id, still open on some node, harmless: it
// owns nothing. Errors: InvalidArgument naming the bad definition or
// attempt list.
func (e *Engine) RegisterWorker(ctx context.Context, p RegisterWorkerParams) (RegisteredWorker, error) {
	if err := e.refuseWhileDraining(); err != nil {
		return RegisteredWorker{}, err
	}
	if p.Name == "" || len(p.Name) > 128 {
		return RegisteredWorker{}, apierr.New(apierr.InvalidArgument, "worker name must be 1-128 bytes")
	}
	if p.Slots < 1 || p.Slots > maxSlots {
		return RegisteredWorker{}, apierr.New(apierr.InvalidArgument, "worker slots %d out of range 1..%d", p.Slots, maxSlots)
	}
	if len(p.Running) > maxSlots {
		return RegisteredWorker{}, apierr.New(apierr.InvalidArgument, "%d running attempts named; at most %d", len(p.Running), maxSlots)
	}
	for _, a := range p.Running {
		if a.StepRunID == "" || a.Attempt < 1 {
			return RegisteredWorker{}, apierr.New(apierr.InvalidArgument, "a running attempt needs a step run id and an attempt (from 1)")
		}
	}
	names := make([]string, 0, len(p.Workflows))
	for _, def := range p.Workflows {
		if err := def.Validate(); err != nil {
			return RegisteredWorker{}, err
		}
		if slices.Contains(names, def.Name) {
			return RegisteredWorker{}, apierr.New(apierr.InvalidArgument, "workflow %q is registered twice", def.Name)
		}
		names = append(names, def.Name)
	}
	now := e.now()
	w := store.Worker{
		ID: newID(), TenantID: p.TenantID, Name: p.Name, NodeID: e.cfg.NodeID,
		Workflows: names, Slots: p.Slots, Alive: true, HeartbeatAt: now, CreatedAt: now,
	}
	err := e.store.Write(ctx, func(tx store.Tx) error {
		// Link the registration to its previous one, if that is a worker
		// of the tenant: a registration whose answer was lost is found
		// through the link (see resume).
		w.PreviousID = ""
		if p.PreviousWorkerID != "" {
			prev, err := tx.GetWorkerForUpdate(ctx, p.PreviousWorkerID)
			switch {
			case err == nil && prev.TenantID == p.TenantID:
				w.PreviousID = prev.ID
			case err != nil && !errors.Is(err, store.ErrNotFound):
				return fmt.Errorf("read previous worker %s: %w", p.PreviousWorkerID, err)
			}
		}
		for _, def := range p.Workflows {
			b, err := json.Marshal(def)
			if err != nil {
				return fmt.Errorf("encode workflow %q: %w", def.Name, err)
			}
			err = tx.UpsertWorkflow(ctx, store.Workflow{
				TenantID: p.TenantID, Name: def.Name, Definition: b, OnEvents: def.OnEvents, UpdatedAt: now,
			})
			if err != nil {
				return fmt.Errorf("store workflow %q: %w", def.Name, err)
			}
		}
		return tx.InsertWorker(ctx, w)
	})
	if err != nil {
		return RegisteredWorker{}, err
	}
	e.log.Info("worker registered", "worker_id", w.ID, "name", w.Name, "slots", w.Slots, "workflows", names)
	out := RegisteredWorker{WorkerID: w.ID}
	if p.PreviousWorkerID == "" {
		return out, nil
	}
	// Not abandoned if the worker goes away before the answer: the moves
	// and the re-queue below are each complete or not done.
	ctx = context.WithoutCancel(ctx)
	out.Resumed, err = e.resume(ctx, p.TenantID, p.PreviousWorkerID, w.ID, p.Running)
	if err != nil {
		return RegisteredWorker{}, err
	}
	if len(p.Running) > 0 {
		e.log.Info("worker reconnected", "worker_id", w.ID, "previous_worker_id", p.PreviousWorkerID,
			"running", len(p.Running), "resumed", len(out.Resumed))
	}
	if len(out.Resumed) > 0 {
		e.mu.Lock()
		e.resumed[w.ID] = resumedAttempts{attempts: out.Resumed, at: e.now()}
		e.mu.Unlock()
	}
	// What the worker did not bring back, it no longer runs.
	if err := e.workerLost(ctx, p.TenantID, p.PreviousWorkerID, "worker reconnected without the attempt"); err != nil {
		e.log.Warn("re-queue step runs of previous worker", "worker_id", p.PreviousWorkerID, "err", err)
	}
	return out, nil
}

// maxRegistrationChain bounds how many registrations resume follows back
// from an attempt's worker to the previous worker named.
const maxRegistrationChain = 4

// succeeds reports whether worker id is a later registration of the same
// worker as prevID: linked to it through PreviousID, all of the tenant.
func (e *Engine) succeeds(ctx context.Context, tenantID, id, prevID string) (bool, error) {
	for range maxRegistrationChain {
		var w store.Worker
		err := e.store.Write(ctx, func(tx store.Tx) error {
			var err error
			w, err = tx.GetWorkerForUpdate(ctx, id)
			return err
		})
		switch {
		case errors.Is(err, store.ErrNotFound):
			return false, nil
		case err != nil:
			return false, fmt.Errorf("read worker %s: %w", id, err)
		case w.TenantID != tenantID || w.PreviousID == "":
			return false, nil
		case w.PreviousID == prevID:
			return true, nil
		}
		id = w.PreviousID
	}
	return false, nil
}

// resumedAttempts are the attempts a registration moved to its new worker
// id, kept until that worker's Listen starts on this node (see Listen).
type resumedAttempts struct {
	attempts []AttemptRef
	at       time.Time
}

// resume moves the named attempts that are still running on the previous
// worker, of the tenant, to the new worker, and returns them. Anything
// else (another tenant's worker or step run, an unknown id, an attempt that
// ended, was re-queued or runs elsewhere) is left alone. Each move locks the
// attempt's run, so it is ordered against every other transition of the
// attempt (completion, cancellation, timeout, the dead-worker sweep).
//
// An attempt is also taken from a registration that named the same
// previous worker (a successor): the worker registered, the answer was
// lost, and it registered again naming the same previous id and attempts.
// Without this the attempts moved by the lost registration would wait on a
// worker id nobody holds until its heartbeat timeout, and run again. Such
// successors are then treated as the previous worker: marked dead, their
// other attempts re-queued.
func (e *Engine) resume(ctx context.Context, tenantID, prevID, newID string, running []AttemptRef) ([]AttemptRef, error) {
	if len(running) == 0 {
		return nil, nil
	}
	successors := map[string]bool{}
	defer func() {
		for id := range successors {
			if err := e.workerLost(ctx, tenantID, id, "worker registered again (its earlier registration's answer was lost)"); err != nil {
				e.log.Warn("re-queue step runs of a lost registration", "worker_id", id, "err", err)
			}
		}
	}()
	var prev store.Worker
	err := e.store.Write(ctx, func(tx store.Tx) error {
		var err error
		prev, err = tx.GetWorkerForUpdate(ctx, prevID)
		return err
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("read previous worker %s: %w", prevID, err)
	case prev.TenantID != tenantID:
		return nil, nil // another tenant's worker: as if unknown
	}
	var resumed []AttemptRef
	seen := make(map[AttemptRef]bool, len(running))
	for _, a := range running {
		if seen[a] {
			continue
		}
		seen[a] = true
		sr, err := e.store.GetStepRun(ctx, a.StepRunID)
		if errors.Is(err, store.ErrNotFound) || (err == nil && sr.TenantID != tenantID) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read step run %s: %w", a.StepRunID, err)
		}
		holder := prevID
		if sr.WorkerID != prevID && sr.WorkerID != newID && sr.WorkerID != "" {
			ok, err := e.succeeds(ctx, tenantID, sr.WorkerID, prevID)
			if err != nil {
				return nil, err
			}
			if ok {
				holder = sr.WorkerID
				successors[holder] = true
			}
		}
		moved := false
		err = e.store.Write(ctx, func(tx store.Tx) error {
			moved = false
			rs, err := lockRun(ctx, tx, tenantID, sr.RunID, e.now())
			if err != nil {
				return err
			}
			i := rs.stepIndex(a.StepRunID)
			if i < 0 {
				return nil
			}
			s := &rs.steps[i]
			if s.Status != store.StepRunning || s.Attempt != a.Attempt || s.WorkerID != holder {
				return nil
			}
			s.WorkerID = newID
			rs.stepsDirty[i] = true
			err = tx.UpsertStepAttempt(ctx, store.StepAttempt{
				StepRunID: s.ID, Attempt: s.Attempt, Status: store.StepRunning, WorkerID: newID, StartedAt: s.StartedAt,
			})
			if err != nil {
				return fmt.Errorf("record attempt %d of step run %s on worker %s: %w", s.Attempt, s.ID, newID, err)
			}
			moved = true
			return rs.save(ctx, tx)
		})
		if err != nil {
			return nil, fmt.Errorf("resume step run %s attempt %d: %w", a.StepRunID, a.Attempt, err)
		}
		if moved {
			resumed = append(resumed, a)
		}
	}
	return resumed, nil
}

// DeregisterWorker is a worker leaving on purpose: its running attempts are
// re-queued now (as when it is lost, not counted against retries) rather
// than after the heartbeat timeout, and it is marked dead. Allowed while
// the node drains: a worker stopping with it should not leave its steps
// waiting for the timeout. Errors: NotFound for an unknown worker or one of
// another tenant.
func (e *Engine) DeregisterWorker(ctx context.Context, tenantID, workerID string) error {
	if err := CheckText("worker id", workerID); err != nil {
		return err
	}
	var w store.Worker
	err := e.store.Write(ctx, func(tx store.Tx) error {
		var err error
		w, err = tx.GetWorkerForUpdate(ctx, workerID)
		return err
	})
	if errors.Is(err, store.ErrNotFound) || (err == nil && w.TenantID != tenantID) {
		return apierr.New(apierr.NotFound, "worker %s is not registered", workerID)
	}
	if err != nil {
		return fmt.Errorf("read worker %s: %w", workerID, err)
	}
	// Not abandoned if the worker hangs up before the answer.
	return e.workerLost(context.WithoutCancel(ctx), tenantID, workerID, "worker stopped")
}

// HeartbeatInterval is how often workers must call Heartbeat.
func (e *Engine) HeartbeatInterval() time.Duration { return e.cfg.HeartbeatInterval }

// Heartbeat keeps a worker of the tenant alive. Errors: NotFound when the
// worker is unknown, another tenant's, or was declared dead (it must
// register again): another tenant cannot keep a worker alive, nor learn
// that it exists.
func (e *Engine) Heartbeat(ctx context.Context, tenantID, workerID string) error {
	now := e.now()
	if err := e.store.TouchWorker(ctx, tenantID, workerID, now); err != nil {
		return notFound(err, "worker %s is not registered or was declared dead; register again", workerID)
	}
	e.sawHeartbeat(workerID, now)
	return nil
}

// Listen connects a registered worker: send is called with each message for
// it until ctx ends (the worker went away or the engine stops).
//
// When the session ends, nothing is re-queued: the stream may have broken
// while the worker lives on (a network blip, this node stopping), and such
// a worker registers again naming the attempts it still runs, which are
// resumed. Attempts of a worker that does not come back are re-queued by
// the dead-worker sweep once its heartbeats stop for the heartbeat timeout
// (maintenance.go); those it comes back without, when it registers again.
// Errors: NotFound for an unknown or dead worker.
func (e *Engine) Listen(ctx context.Context, tenantID, workerID string, send func(Message) error) error {
	if err := e.refuseWhileDraining(); err != nil {
		return err
	}
	var w store.Worker
	var running []store.StepRun
	err := e.store.Write(ctx, func(tx store.Tx) error {
		var err error
		if w, err = tx.GetWorkerForUpdate(ctx, workerID); err != nil || w.TenantID != tenantID || !w.Alive {
			return err
		}
		running, err = tx.ListStepRunsOfWorker(ctx, workerID)
		return err
	})
	if err != nil || w.TenantID != tenantID || !w.Alive {
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return apierr.New(apierr.NotFound, "worker %s is not registered or was declared dead; register again", workerID)
	}
	s := &session{
		workerID: w.ID, tenantID: w.TenantID, name: w.Name, userAgent: userAgentOf(ctx),
		workflows: w.Workflows, slots: w.Slots, connectedAt: e.now(), heartbeatAt: w.HeartbeatAt,
		out: make(chan Message, w.Slots+1024), running: map[string]int{}, broken: make(chan struct{}),
	}
	// The attempts it already runs (resumed ones) hold slots. Those resumed
	// by its registration but ended since (a cancellation sent while it had
	// no session) are added too: the next reconcileSessions tells the worker
	// to stop them.
	for _, sr := range running {
		s.running[sr.ID] = sr.Attempt
	}
	e.mu.Lock()
	for _, a := range e.resumed[w.ID].attempts {
		if _, ok := s.running[a.StepRunID]; !ok {
			s.running[a.StepRunID] = a.Attempt
		}
	}
	delete(e.resumed, w.ID)
	if old, ok := e.sessions[w.ID]; ok {
		e.closeSessionLocked(old)
	}
	e.sessions[w.ID] = s
	e.order = append(e.order, w.ID)
	e.mu.Unlock()
	e.wakeDispatcher()

	err = e.serveSession(ctx, s, send)

	e.mu.Lock()
	if e.sessions[w.ID] == s {
		e.closeSessionLocked(s)
	}
	e.mu.Unlock()
	return err
}

func (e *Engine) serveSession(ctx context.Context, s *session, send func(Message) error) error {
	for {
		select {
		case m := <-s.out:
			if err := send(m); err != nil {
				return err
			}
		case <-s.broken:
			return apierr.New(apierr.Unavailable, "worker session replaced or lost; register again")
		case <-e.draining.Done():
			return apierr.New(apierr.Unavailable, "engine is shutting down; reconnect")
		case <-ctx.Done():
			return nil
		}
	}
}

// WorkerSlots reports the workers connected to this node, their slots, and
// how many of those run a step attempt.
func (e *Engine) WorkerSlots() metrics.WorkerSlots {
	e.mu.Lock()
	defer e.mu.Unlock()
	var ws metrics.WorkerSlots
	for _, s := range e.sessions {
		ws.Workers++
		ws.Slots += s.slots
		ws.InUse += len(s.running)
	}
	return ws
}

// closeSessionLocked removes a session; e.mu must be held.
func (e *Engine) closeSessionLocked(s *session) {
	if s.closed {
		return
	}
	s.closed = true
	close(s.broken)
	delete(e.sessions, s.workerID)
	e.order = slices.DeleteFunc(e.order, func(id string) bool { return id == s.workerID })
}

// PutStream stores stream events of a running step attempt (group commit).
func (e *Engine) PutStream(ctx context.Context, put eventlog.StreamPut) error {
	return e.appender.Put(ctx, put)
}

// CompleteStep applies the output of a step attempt. Errors: NotFound,
// FailedPrecondition when the attempt is no longer running (cancelled, timed
// out, re-queued), InvalidArgument for output that is not JSON.
func (e *Engine) CompleteStep(ctx context.Context, tenantID, stepRunID string, attempt int, output []byte) error {
	if len(output) == 0 {
		output = []byte("null")
	}
	if len(output) > MaxInputSize {
		return apierr.New(apierr.InvalidArgument, "step output of %d bytes exceeds the %d MiB limit", len(output), MaxInputSize>>20)
	}
	if !json.Valid(output) {
		return apierr.New(apierr.InvalidArgument, "step output is not valid JSON")
	}
	return e.onAttempt(ctx, tenantID, stepRunID, attempt, func(ctx context.Context, tx store.Tx, rs *runState, i int) error {
		return rs.completeStep(ctx, tx, i, output)
	})
}

// FailStep applies the failure of a step attempt: it is retried if its
// retries allow (and noRetry is not set), else the run fails. Errors as
// CompleteStep.
func (e *Engine) FailStep(ctx context.Context, tenantID, stepRunID string, attempt int, message string, noRetry bool) error {
	if message == "" {
		message = "step failed"
	}
	if len(message) > 64<<10 {
		message = message[:64<<10]
	}
	return e.onAttempt(ctx, tenantID, stepRunID, attempt, func(ctx context.Context, tx store.Tx, rs *runState, i int) error {
		return rs.failAttempt(ctx, tx, i, failReason{status: store.StepFailed, message: message, noRetry: noRetry}, e.cfg.MaxBackoff)
	})
}

// onAttempt runs a transition on a running step attempt reported by its
// worker, refusing stale reports.
func (e *Engine) onAttempt(ctx context.Context, tenantID, stepRunID string, attempt int,
	apply func(context.Context, store.Tx, *runState, int) error,
) error {
	sr, err := e.store.GetStepRun(ctx, stepRunID)
	if err != nil || sr.TenantID != tenantID {
		return notFound(orNotFound(err), "unknown step run %s", stepRunID)
	}
	var rs *runState
	err = e.groups.write(ctx, e.store, sr.RunID, func(tx store.Tx) error {
		var err error
		if rs, err = lockRun(ctx, tx, tenantID, sr.RunID, e.now()); err != nil {
			return err
		}
		i := rs.stepIndex(stepRunID)
		if i < 0 {
			return apierr.New(apierr.NotFound, "unknown step run %s", stepRunID)
		}
		if err := eventlog.CheckAttemptRunning(rs.steps[i], attempt); err != nil {
			return err
		}
		if err := apply(ctx, tx, rs, i); err != nil {
			return err
		}
		return rs.save(ctx, tx)
	})
	if err != nil {
		return err
	}
	e.afterCommit(rs)
	return nil
}

func orNotFound(err error) error {
	if err == nil {
		return store.ErrNotFound
	}
	return err
}

// afterCommit frees the slots of step runs that stopped running, tells
// workers on this node to stop attempts they did not end themselves, and
// wakes the dispatcher when something became claimable or a slot freed.
func (e *Engine) afterCommit(rs *runState) {
	if rs == nil {
		return
	}
	e.logTransitions(rs.events, rs.stoppedWorkers())
	wake := rs.queued
	if rs.failedNow() {
		e.kickSweep() // cancel the run's children
	}
	e.mu.Lock()
	for _, st := range rs.stopped {
		s, ok := e.sessions[st.workerID]
		if !ok {
			continue
		}
		if a, ok := s.running[st.stepRunID]; ok && a == st.attempt {
			delete(s.running, st.stepRunID)
			wake = true
		}
		if st.notify {
			msg := Message{Cancellation: &Cancellation{StepRunID: st.stepRunID, Attempt: st.attempt, Reason: st.reason}}
			select {
			case s.out <- msg:
			default:
				// The worker is not reading; it will learn the attempt is
				// stale when it reports.
			}
		}
	}
	e.mu.Unlock()
	if wake {
		e.wakeDispatcher()
	}
}

// workerLost re-queues a worker's running step runs as new attempts (not
// counted against their retries), then marks it dead. Safe to call more
// than once. The worker is marked dead last: if this is interrupted (the
// engine killed, the database unreachable), the worker still looks alive
// with an old heartbeat, so the maintenance loop calls workerLost again
// after the heartbeat timeout and no step run stays running on a worker
// nobody will re-queue. Once it is dead no node can assign it more (assign
// checks under the worker's row lock), so a second look after marking it
// dead catches an assignment made while the first pass ran.
//
// The tenant is checked before anything is touched: a worker id named by
// another tenant (or unknown) changes nothing, not even this node's session.
func (e *Engine) workerLost(ctx context.Context, tenantID, workerID, reason string) error {
	steps, err := e.runningOfWorker(ctx, tenantID, workerID)
	if errors.Is(err, store.ErrNotFound) {
		return nil // nothing to re-queue for a worker this tenant never had
	}
	if err != nil {
		return err
	}
	// No more assignments to it from this node.
	e.mu.Lock()
	if s, ok := e.sessions[workerID]; ok && s.tenantID == tenantID {
		e.closeSessionLocked(s)
	}
	e.mu.Unlock()
	if len(steps) > 0 {
		e.log.Info("worker lost; re-queueing its step runs", "worker_id", workerID, "reason", reason, "step_runs", len(steps))
	}
	if err := e.requeue(ctx, workerID, steps, reason); err != nil {
		return err
	}
	err = e.store.Write(ctx, func(tx store.Tx) error {
		_, err := tx.MarkWorkerDead(ctx, workerID)
		return err
	})
	if err != nil {
		return fmt.Errorf("mark worker %s dead: %w", workerID, err)
	}
	if steps, err = e.runningOfWorker(ctx, tenantID, workerID); err != nil {
		return err
	}
	return e.requeue(ctx, workerID, steps, reason)
}

// runningOfWorker lists the running step runs of a worker of the tenant;
// store.ErrNotFound for an unknown worker or another tenant's.
func (e *Engine) runningOfWorker(ctx context.Context, tenantID, workerID string) ([]store.StepRun, error) {
	var steps []store.StepRun
	err := e.store.Write(ctx, func(tx store.Tx) error {
		w, err := tx.GetWorkerForUpdate(ctx, workerID)
		if err != nil {
			return err
		}
		if w.TenantID != tenantID {
			return store.ErrNotFound
		}
		steps, err = tx.ListStepRunsOfWorker(ctx, workerID)
		return err
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("list step runs of worker %s: %w", workerID, err)
	}
	return steps, err
}

// requeue ends the given attempts, if they are still running on the
// worker, as lost (not counted against retries), each in a transaction of
// its own.
func (e *Engine) requeue(ctx context.Context, workerID string, steps []store.StepRun, reason string) error {
	for _, sr := range steps {
		var rs *runState
		err := e.store.Write(ctx, func(tx store.Tx) error {
			var err error
			if rs, err = lockRun(ctx, tx, sr.TenantID, sr.RunID, e.now()); err != nil {
				return err
			}
			i := rs.stepIndex(sr.ID)
			if i < 0 || rs.steps[i].Status != store.StepRunning || rs.steps[i].WorkerID != workerID || rs.steps[i].Attempt != sr.Attempt {
				rs = nil
				return nil // ended or resumed elsewhere meanwhile
			}
			why := failReason{status: store.StepFailed, message: "worker lost: " + reason, notCounted: true}
			if err := rs.failAttempt(ctx, tx, i, why, e.cfg.MaxBackoff); err != nil {
				return err
			}
			return rs.save(ctx, tx)
		})
		if err != nil {
			return fmt.Errorf("re-queue step run %s: %w", sr.ID, err)
		}
		e.afterCommit(rs)
	}
	return nil
}
