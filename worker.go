package runnel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"connectrpc.com/connect"

	runnelv1 "github.com/runnel-dev/runnel/internal/gen/runnel/v1"
)

// Causes of a step context's cancellation, as told by [context.Cause]:
//
//	if errors.Is(context.Cause(ctx), runnel.ErrStepTimedOut) { … }
//
// When the worker's Run context ends, the cause is that context's cause.
var (
	// ErrStepCancelled: the engine cancelled the attempt (the run was
	// cancelled, for example).
	ErrStepCancelled = errors.New("step cancelled")
	// ErrStepTimedOut: the attempt ran longer than its [Timeout].
	ErrStepTimedOut = errors.New("step timed out")
	// ErrSessionLost: the worker lost its connection to the engine and,
	// when it registered again, the engine no longer ran this attempt on it:
	// the worker was away longer than the engine's heartbeat timeout (the
	// engine re-queued the attempt as a new one), or the attempt ended
	// meanwhile. This attempt's result would be refused.
	ErrSessionLost = errors.New("worker session lost")
	// ErrStaleAttempt: the engine refused this attempt's stream because the
	// attempt is no longer current (cancelled, timed out or re-queued).
	ErrStaleAttempt = errors.New("step attempt is stale")
)

// errStepReturnedCause cancels a step's context once it has been dealt with.
var errStepReturnedCause = errors.New("step returned")

// WorkerOption configures a [Worker].
type WorkerOption interface {
	applyToWorker(*workerConfig)
}

type workerConfig struct {
	slots int
}

type workerOptionFunc func(*workerConfig)

func (f workerOptionFunc) applyToWorker(c *workerConfig) { f(c) }

// DefaultSlots is the number of steps a worker runs at once unless
// [WithSlots] says otherwise.
const DefaultSlots = 10

// maxSlots is the engine's limit on a worker's slots.
const maxSlots = 10000

// WithSlots sets how many steps the worker runs at once (default 10). The
// engine assigns no more than that; n must be between 1 and 10000.
func WithSlots(n int) WorkerOption {
	return workerOptionFunc(func(c *workerConfig) { c.slots = n })
}

// workerTuning holds the worker's timing. The engine's heartbeat interval
// overrides defaultHeartbeat; tests shrink the rest.
type workerTuning struct {
	reconnectBase, reconnectMax time.Duration
	reportBase, reportMax       time.Duration
	callTimeout                 time.Duration // per unary call
	defaultHeartbeat            time.Duration // if the engine names none
	// heartbeatMisses consecutive failed heartbeats drop the session, in
	// case a broken connection leaves the Listen stream hanging.
	heartbeatMisses int
	stream          streamLimits
}

var defaultWorkerTuning = workerTuning{
	reconnectBase:    100 * time.Millisecond,
	reconnectMax:     2 * time.Second,
	reportBase:       100 * time.Millisecond,
	reportMax:        2 * time.Second,
	callTimeout:      30 * time.Second,
	defaultHeartbeat: 5 * time.Second,
	heartbeatMisses:  5,
	stream:           defaultStreamLimits,
}

// Worker runs the steps of its registered workflows as the engine assigns
// them, at most slots at a time. Create it with [Client.NewWorker], add
// workflows with [Worker.Register], then call [Worker.Run].
type Worker struct {
	c     *Client
	name  string
	slots int
	log   *slog.Logger
	tun   workerTuning
	// sem holds one token per running step.
	sem chan struct{}

	// ready is closed once the worker first registered with the engine.
	ready     chan struct{}
	readyOnce sync.Once

	mu        sync.Mutex
	workflows []*compiledWorkflow
	byName    map[string]*compiledWorkflow
	running   bool

	// attempts are the step attempts this worker runs, from assignment
	// until their result is reported (or they are abandoned). They belong
	// to the worker, not to a session: when a session breaks they go on,
	// and the next registration asks the engine to resume them.
	attemptsMu sync.Mutex
	attempts   map[attemptKey]*attemptHandle
}

// attemptHandle controls one running attempt.
type attemptHandle struct {
	// cancelStep cancels the step function's context (the engine
	// cancelled the attempt or it timed out); its result is not reported.
	cancelStep context.CancelCauseFunc
	// abandon ends everything of the attempt on this worker: the step
	// function's context, its stream and its report. The attempt is no
	// longer this worker's.
	abandon context.CancelCauseFunc
}

// NewWorker returns a worker named name (shown in the dashboard and logs;
// several processes may share a name). It does not connect: [Worker.Run]
// does.
//
// Errors: an empty or over-long name, or fewer than 1 slot.
func (c *Client) NewWorker(name string, opts ...WorkerOption) (*Worker, error) {
	cfg := workerConfig{slots: DefaultSlots}
	for _, opt := range opts {
		opt.applyToWorker(&cfg)
	}
	if name == "" || len(name) > maxNameLen || !utf8.ValidString(name) ||
		strings.ContainsFunc(name, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return nil, fmt.Errorf("runnel: invalid worker name %q: 1 to %d printable characters", name, maxNameLen)
	}
	if cfg.slots < 1 || cfg.slots > maxSlots {
		return nil, fmt.Errorf("runnel: worker %q: slots must be between 1 and %d, not %d", name, maxSlots, cfg.slots)
	}
	return &Worker{
		c:        c,
		name:     name,
		slots:    cfg.slots,
		log:      c.logger.With("worker", name),
		tun:      defaultWorkerTuning,
		sem:      make(chan struct{}, cfg.slots),
		ready:    make(chan struct{}),
		byName:   make(map[string]*compiledWorkflow),
		attempts: make(map[attemptKey]*attemptHandle),
	}, nil
}

// Ready returns a channel that is closed once the worker, running, has
// registered with the engine for the first time: from then on the engine
// knows its workflows, so runs of them can be triggered.
func (w *Worker) Ready() <-chan struct{} { return w.ready }

// Register adds workflows for the worker to run. It validates each one and
// registers none if any is invalid; the error names the workflow and the
// problem (an invalid or duplicate name, an unknown parent, a cycle, …).
// Register must be called before [Worker.Run]. The workflows are copied:
// changing them afterwards has no effect.
func (w *Worker) Register(wfs ...*Workflow) error {
	compiled := make([]*compiledWorkflow, 0, len(wfs))
	seen := make(map[string]bool, len(wfs))
	for _, wf := range wfs {
		cw, err := wf.compile()
		if err != nil {
			return fmt.Errorf("runnel: register: %w", err)
		}
		if seen[cw.name] {
			return fmt.Errorf("runnel: register: workflow %q given twice", cw.name)
		}
		seen[cw.name] = true
		compiled = append(compiled, cw)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.running {
		return errors.New("runnel: register: the worker is running; register workflows before Run")
	}
	for _, cw := range compiled {
		if w.byName[cw.name] != nil {
			return fmt.Errorf("runnel: register: workflow %q is already registered", cw.name)
		}
	}
	for _, cw := range compiled {
		w.byName[cw.name] = cw
		w.workflows = append(w.workflows, cw)
	}
	return nil
}

// Run connects to the engine and runs assigned steps until ctx is done. It
// returns nil when ctx ends, after every step it started has returned (so
// steps should honour their context), or an error if the engine refuses
// the worker for good (bad token, invalid workflow definitions) or Run is
// called without workflows or while already running.
//
// Run keeps the worker connected: when its session breaks (engine restart,
// node failover, network failure), its steps keep running (their stream
// puts wait in the bounded queue, their results are retried) while it
// registers again, with backoff, naming the attempts it runs. The engine
// resumes those it still runs on this worker, and the steps finish as if
// nothing happened. Steps of attempts the engine does not resume (the
// worker was away longer than the engine's heartbeat timeout, and the
// engine re-queued them) are cancelled with [ErrSessionLost].
func (w *Worker) Run(ctx context.Context) error {
	w.mu.Lock()
	if w.running {
		w.mu.Unlock()
		return fmt.Errorf("runnel: worker %q is already running", w.name)
	}
	if len(w.workflows) == 0 {
		w.mu.Unlock()
		return fmt.Errorf("runnel: worker %q: no workflows registered", w.name)
	}
	w.running = true
	defs := make([]*runnelv1.WorkflowDefinition, 0, len(w.workflows))
	for _, cw := range w.workflows {
		defs = append(defs, cw.def)
	}
	byName := w.byName // not modified while running
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.running = false
		w.mu.Unlock()
	}()

	// Leaving on purpose, the worker says so once its steps have stopped
	// (deferred before steps.Wait, so it runs after it): the engine
	// re-queues what they did not finish now, not after its heartbeat
	// timeout.
	prevID := ""
	defer func() { w.deregister(prevID) }()

	// Step goroutines belong to Run, not to a session: a step that is slow
	// to honour its cancelled context must not hold up re-registration.
	var steps sync.WaitGroup
	defer steps.Wait()

	bo := newBackoff(w.tun.reconnectBase, w.tun.reconnectMax)
	for {
		running := w.runningAttempts()
		sess, resumed, err := w.register(ctx, defs, byName, prevID, running)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			switch connect.CodeOf(err) {
			case connect.CodeInvalidArgument, connect.CodeUnauthenticated,
				connect.CodePermissionDenied, connect.CodeUnimplemented:
				return fmt.Errorf("runnel: worker %q: %w", w.name, err)
			case connect.CodeNotFound, connect.CodeFailedPrecondition:
				// Perhaps the engine refuses the previous worker id (it
				// forgot it): register afresh; nothing can be resumed.
				prevID = ""
			}
			d := bo.next()
			w.log.Warn("worker registration failed; retrying", "error", err, "retry_in", d)
			if !sleep(ctx, d) {
				return nil
			}
			continue
		}
		prevID = sess.id
		w.abandonAllBut(running, resumed)
		w.readyOnce.Do(func() { close(w.ready) })
		err = sess.run(ctx, &steps)
		if ctx.Err() != nil {
			return nil
		}
		if sess.healthy.Load() {
			bo.reset()
		}
		d := bo.next()
		w.log.Warn("worker session lost; registering again", "worker_id", sess.id, "error", err, "retry_in", d)
		if !sleep(ctx, d) {
			return nil
		}
	}
}

// deregisterTimeout bounds the goodbye of a stopping worker: an engine that
// does not answer in time finds the worker gone at its heartbeat timeout.
const deregisterTimeout = 5 * time.Second

// deregister tells the engine that worker id left on purpose. Best effort:
// an unreachable engine declares the worker dead at its heartbeat timeout.
func (w *Worker) deregister(id string) {
	if id == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), deregisterTimeout)
	defer cancel()
	if _, err := w.c.worker.DeregisterWorker(ctx, connect.NewRequest(&runnelv1.DeregisterWorkerRequest{WorkerId: id})); err != nil {
		w.log.Debug("deregister worker", "worker_id", id, "error", err)
	}
}

// runningAttempts lists the attempts the worker runs (or still reports).
func (w *Worker) runningAttempts() []attemptKey {
	w.attemptsMu.Lock()
	defer w.attemptsMu.Unlock()
	keys := make([]attemptKey, 0, len(w.attempts))
	for k := range w.attempts {
		keys = append(keys, k)
	}
	return keys
}

// abandonAllBut abandons the attempts of running the engine did not resume.
func (w *Worker) abandonAllBut(running []attemptKey, resumed map[attemptKey]bool) {
	w.attemptsMu.Lock()
	defer w.attemptsMu.Unlock()
	for _, k := range running {
		if h := w.attempts[k]; h != nil && !resumed[k] {
			w.log.Warn("step attempt abandoned: the engine did not resume it (it re-queued or ended it while the worker was away)",
				"step_run_id", k.stepRunID, "attempt", k.attempt)
			h.abandon(fmt.Errorf("%w: the engine no longer runs step run %s attempt %d on this worker (the worker was away longer than its heartbeat timeout, or the attempt ended meanwhile)",
				ErrSessionLost, k.stepRunID, k.attempt))
		}
	}
}

// register opens a session, naming the attempts the worker still runs
// under prevID; it returns those the engine resumed.
func (w *Worker) register(ctx context.Context, defs []*runnelv1.WorkflowDefinition, byName map[string]*compiledWorkflow, prevID string, running []attemptKey) (*session, map[attemptKey]bool, error) {
	cctx, cancel := context.WithTimeout(ctx, w.tun.callTimeout)
	defer cancel()
	req := &runnelv1.RegisterWorkerRequest{
		Name:             w.name,
		Slots:            int32(w.slots),
		Workflows:        defs,
		PreviousWorkerId: prevID,
	}
	if prevID != "" {
		for _, k := range running {
			req.Running = append(req.Running, &runnelv1.RunningAttempt{StepRunId: k.stepRunID, Attempt: k.attempt})
		}
	}
	resp, err := w.c.worker.RegisterWorker(cctx, connect.NewRequest(req))
	if err != nil {
		return nil, nil, fmt.Errorf("register worker: %w", err)
	}
	resumed := make(map[attemptKey]bool, len(resp.Msg.GetResumed()))
	for _, a := range resp.Msg.GetResumed() {
		resumed[attemptKey{a.GetStepRunId(), a.GetAttempt()}] = true
	}
	hb := time.Duration(resp.Msg.GetHeartbeatIntervalMs()) * time.Millisecond
	if hb <= 0 {
		hb = w.tun.defaultHeartbeat
	}
	s := &session{
		w:         w,
		id:        resp.Msg.GetWorkerId(),
		heartbeat: hb,
		workflows: byName,
		log:       w.log.With("worker_id", resp.Msg.GetWorkerId()),
	}
	s.log.Info("worker registered", "previous_worker_id", prevID, "heartbeat_interval", hb, "slots", w.slots,
		"running", len(req.Running), "resumed", len(resumed))
	return s, resumed, nil
}

type attemptKey struct {
	stepRunID string
	attempt   int32
}

// session is one registration of the worker: one worker id and one Listen
// stream. The step attempts it receives outlive it (Worker.attempts).
type session struct {
	w         *Worker
	id        string
	heartbeat time.Duration
	workflows map[string]*compiledWorkflow
	log       *slog.Logger
	// healthy is set once the session worked (a heartbeat succeeded or a
	// message arrived), so that the reconnect backoff starts over.
	healthy atomic.Bool
}

// run listens for assignments until the session breaks or ctx ends, and
// returns why it broke. Steps it started go on (as goroutines added to
// steps, with contexts derived from ctx).
func (s *session) run(ctx context.Context, steps *sync.WaitGroup) error {
	sctx, drop := context.WithCancelCause(ctx)
	var hb sync.WaitGroup
	hb.Go(func() { s.heartbeatLoop(sctx, drop) })
	err := s.listen(ctx, sctx, steps)
	if sctx.Err() != nil {
		err = context.Cause(sctx) // the heartbeat dropped the session, or ctx ended
	}
	drop(fmt.Errorf("%w: %v", ErrSessionLost, err))
	hb.Wait()
	return err
}

// listen receives assignments and cancellations until the stream ends.
// Steps run under ctx (the worker's), not sctx (the session's).
func (s *session) listen(ctx, sctx context.Context, steps *sync.WaitGroup) error {
	stream, err := s.w.c.worker.Listen(sctx, connect.NewRequest(&runnelv1.ListenRequest{WorkerId: s.id}))
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer stream.Close()
	for stream.Receive() {
		s.healthy.Store(true)
		msg := stream.Msg()
		if a := msg.GetAssignment(); a != nil {
			s.start(ctx, steps, a)
		} else if c := msg.GetCancellation(); c != nil {
			s.w.cancelAttempt(c)
		}
	}
	if err := stream.Err(); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	return errors.New("listen: the engine ended the stream")
}

// heartbeatCallFactor × the heartbeat interval bounds one Heartbeat call.
const heartbeatCallFactor = 4

// heartbeatLoop tells the engine the worker is alive, every interval the
// engine asked for. It drops the session when the engine no longer knows
// the worker (it declared it dead and re-queued its steps) or when
// heartbeats keep failing.
func (s *session) heartbeatLoop(sctx context.Context, drop context.CancelCauseFunc) {
	t := time.NewTicker(s.heartbeat)
	defer t.Stop()
	misses := 0
	for {
		select {
		case <-sctx.Done():
			return
		case <-t.C:
		}
		// A slow heartbeat (an engine busy writing) still keeps the worker
		// alive when it lands; cutting it off at one interval would not,
		// and would make a loaded engine declare live workers dead.
		hctx, cancel := context.WithTimeout(sctx, heartbeatCallFactor*s.heartbeat)
		_, err := s.w.c.worker.Heartbeat(hctx, connect.NewRequest(&runnelv1.HeartbeatRequest{WorkerId: s.id}))
		cancel()
		switch {
		case err == nil:
			misses = 0
			s.healthy.Store(true)
			continue
		case sctx.Err() != nil:
			return
		case connect.CodeOf(err) == connect.CodeNotFound:
			drop(fmt.Errorf("%w: the engine declared the worker dead: %v", ErrSessionLost, err))
			return
		}
		misses++
		s.log.Debug("heartbeat failed", "error", err, "misses", misses)
		if misses >= s.w.tun.heartbeatMisses {
			drop(fmt.Errorf("%w: %d heartbeats in a row failed, the last with: %v", ErrSessionLost, misses, err))
			return
		}
	}
}

// start runs an assignment in a new goroutine, added to steps. The
// attempt lives under ctx (the worker's Run context), across sessions.
func (s *session) start(ctx context.Context, steps *sync.WaitGroup, a *runnelv1.StepAssignment) {
	key := attemptKey{a.GetStepRunId(), a.GetAttempt()}
	log := s.log.With("run_id", a.GetRunId(), "workflow", a.GetWorkflow(), "step", a.GetStep(),
		"step_run_id", a.GetStepRunId(), "attempt", a.GetAttempt())
	var def *stepDef
	if wf := s.workflows[a.GetWorkflow()]; wf != nil {
		def = wf.steps[a.GetStep()]
	}

	w := s.w
	w.attemptsMu.Lock()
	defer w.attemptsMu.Unlock()
	if _, dup := w.attempts[key]; dup {
		log.Warn("ignoring a repeated assignment of a running attempt")
		return
	}
	// attemptCtx is the attempt's life on this worker: the step, its
	// stream and its report.
	attemptCtx, abandon := context.WithCancelCause(ctx)
	// The timeout starts when the assignment arrives, not when a slot frees
	// up: the engine's clock for the attempt started when it assigned it.
	base, cancelTimeout := attemptCtx, context.CancelFunc(func() {})
	if ms := a.GetTimeoutMs(); ms > 0 {
		d := time.Duration(ms) * time.Millisecond
		base, cancelTimeout = context.WithTimeoutCause(attemptCtx, d, fmt.Errorf("%w after %v", ErrStepTimedOut, d))
	}
	stepCtx, cancelStep := context.WithCancelCause(base)
	w.attempts[key] = &attemptHandle{cancelStep: cancelStep, abandon: abandon}
	steps.Go(func() {
		defer func() {
			w.attemptsMu.Lock()
			delete(w.attempts, key)
			w.attemptsMu.Unlock()
			cancelStep(errStepReturnedCause)
			cancelTimeout()
			abandon(errStepReturnedCause)
		}()
		w.runStep(attemptCtx, stepCtx, abandon, a, def, log)
	})
}

// cancelAttempt cancels the context of the attempt the engine names (every
// attempt of the step run if it names none).
func (w *Worker) cancelAttempt(c *runnelv1.StepCancellation) {
	cause := fmt.Errorf("%w by the engine", ErrStepCancelled)
	if r := c.GetReason(); r != "" {
		cause = fmt.Errorf("%w by the engine: %s", ErrStepCancelled, r)
	}
	w.attemptsMu.Lock()
	defer w.attemptsMu.Unlock()
	for key, h := range w.attempts {
		if key.stepRunID == c.GetStepRunId() && (c.GetAttempt() == 0 || key.attempt == c.GetAttempt()) {
			h.cancelStep(cause)
		}
	}
}

// runStep runs one attempt: it waits for a slot, calls the step function,
// flushes the attempt's stream and reports the result. An attempt whose
// context was cancelled before the function returned is not reported: the
// engine cancelled it, timed it out or re-queued it, or the worker stops.
// attemptCtx (which abandon cancels) bounds the stream and the report:
// both go on across sessions.
func (w *Worker) runStep(attemptCtx, stepCtx context.Context, abandon context.CancelCauseFunc, a *runnelv1.StepAssignment, def *stepDef, log *slog.Logger) {
	if def == nil {
		w.report(attemptCtx, log, a, nil, fmt.Errorf("worker %q has no step %q in workflow %q", w.name, a.GetStep(), a.GetWorkflow()))
		return
	}
	select {
	case w.sem <- struct{}{}:
		defer func() { <-w.sem }()
	case <-stepCtx.Done():
		log.Debug("step ended before a slot was free", "cause", context.Cause(stepCtx))
		return
	}
	if stepCtx.Err() != nil {
		log.Debug("step ended before it started", "cause", context.Cause(stepCtx))
		return
	}

	stream := newStepStream(attemptCtx, w.put, a.GetStepRunId(), a.GetAttempt(), w.tun.stream,
		func(err error) { abandon(fmt.Errorf("%w: %v", ErrStaleAttempt, err)) }, log)
	sc := &stepContext{Context: stepCtx, a: a, parents: def.parents, stream: stream, w: w}
	log.Debug("step started")
	out, err := invoke(def.fn, sc)
	if stepCtx.Err() != nil {
		stream.abort()
		log.Debug("step not reported: its context was cancelled", "cause", context.Cause(stepCtx), "error", err)
		return
	}
	// Stream events come before the result: a subscriber sees every event
	// a step put before its step.completed or step.failed.
	if ferr := stream.finish(attemptCtx); ferr != nil {
		if attemptCtx.Err() != nil || isStale(ferr) {
			log.Debug("step not reported", "cause", ferr)
			return
		}
		if err == nil {
			err = ferr
		} else {
			err = fmt.Errorf("%w (and %v)", err, ferr)
		}
	}
	w.report(attemptCtx, log, a, out, err)
}

// maxErrorLen caps the error message sent with FailStep.
const maxErrorLen = 32 << 10

// report sends the attempt's result, retrying transient failures (the
// engine unreachable, restarting, or failing over) until the engine
// answers for good or the attempt is abandoned.
func (w *Worker) report(attemptCtx context.Context, log *slog.Logger, a *runnelv1.StepAssignment, out any, stepErr error) {
	var output []byte
	if stepErr == nil {
		data, err := json.Marshal(out)
		if err != nil {
			stepErr = NonRetryable(fmt.Errorf("marshal step output: %w", err))
		}
		output = data
	}
	bo := newBackoff(w.tun.reportBase, w.tun.reportMax)
	for {
		cctx, cancel := context.WithTimeout(attemptCtx, w.tun.callTimeout)
		var err error
		if stepErr == nil {
			_, err = w.c.worker.CompleteStep(cctx, connect.NewRequest(&runnelv1.CompleteStepRequest{
				StepRunId: a.GetStepRunId(),
				Attempt:   a.GetAttempt(),
				Output:    output,
			}))
		} else {
			_, err = w.c.worker.FailStep(cctx, connect.NewRequest(&runnelv1.FailStepRequest{
				StepRunId: a.GetStepRunId(),
				Attempt:   a.GetAttempt(),
				Error:     truncate(storableText(stepErr.Error()), maxErrorLen),
				NoRetry:   IsNonRetryable(stepErr),
			}))
		}
		cancel()
		switch {
		case err == nil:
			if stepErr == nil {
				log.Debug("step completed")
			} else {
				log.Debug("step failed", "error", stepErr)
			}
			return
		case attemptCtx.Err() != nil:
			log.Debug("step not reported", "cause", context.Cause(attemptCtx), "error", err)
			return
		case isStale(err):
			log.Debug("step result refused: the attempt is stale", "error", err)
			return
		case isTransient(err):
			d := bo.next()
			log.Debug("reporting step result failed; retrying", "error", err, "retry_in", d)
			if !sleep(attemptCtx, d) {
				return
			}
		case stepErr == nil && (connect.CodeOf(err) == connect.CodeInvalidArgument ||
			connect.CodeOf(err) == connect.CodeResourceExhausted):
			// The engine refused the output (too large, say): fail the
			// attempt rather than leave it running until it times out.
			log.Warn("step output refused; failing the step", "error", err)
			stepErr = NonRetryable(fmt.Errorf("report step output: %w", err))
		default:
			log.Error("reporting step result failed", "error", err, "step_error", stepErr)
			return
		}
	}
}

func (w *Worker) put(ctx context.Context, req *runnelv1.PutStreamRequest) error {
	_, err := w.c.worker.PutStream(ctx, connect.NewRequest(req))
	return err
}

// invoke calls a step function, turning a panic into an error with the
// panic value and a short stack.
func invoke(fn StepFunc, ctx Context) (out any, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("step panicked: %v\n%s", r, panicStack())
		}
	}()
	return fn(ctx)
}

// panicStack formats the frames between the panic and invoke, at most 10.
// Called from invoke's deferred function, the stack still holds them.
func panicStack() string {
	pcs := make([]uintptr, 64)
	n := runtime.Callers(2, pcs)
	frames := runtime.CallersFrames(pcs[:n])
	var b strings.Builder
	inPanic, count := false, 0
	for {
		f, more := frames.Next()
		switch {
		case !inPanic:
			inPanic = f.Function == "runtime.gopanic"
		case strings.HasPrefix(f.Function, "runtime."):
			// runtime.panicmem, runtime.sigpanic and the like
		case strings.HasSuffix(f.Function, "/runnel.invoke"):
			return b.String()
		default:
			fmt.Fprintf(&b, "%s\n\t%s:%d\n", f.Function, f.File, f.Line)
			count++
		}
		if !more || count == 10 {
			return b.String()
		}
	}
}

// storableText makes an error message acceptable to the engine, which
// refuses NUL characters and text that is not UTF-8 (protobuf refuses the
// latter too): both become U+FFFD, so a step's failure is always recorded.
func storableText(s string) string {
	return strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", "\uFFFD"), "\uFFFD")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "… (truncated)"
}
