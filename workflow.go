package runnel

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	runnelv1 "github.com/runnel-dev/runnel/internal/gen/runnel/v1"
)

// StepFunc is the code of one step. It returns the step's output, which is
// marshalled to JSON, or an error, which fails the attempt (retried if the
// step has retries left, unless it is wrapped with [NonRetryable]). The
// context is cancelled when the step is cancelled, times out, or its worker
// loses its session or stops; a step should then return promptly.
type StepFunc func(ctx Context) (any, error)

// Workflow is a named definition of steps that form a DAG. Build one with
// [NewWorkflow] and [Workflow.Step], then give it to [Worker.Register],
// which validates it.
type Workflow struct {
	name     string
	steps    []*stepDef
	onEvents []string
}

type stepDef struct {
	name    string
	fn      StepFunc
	parents []string
	retries int
	backoff time.Duration
	timeout time.Duration
}

// NewWorkflow starts the definition of a workflow. Names are 1 to 128
// characters: letters, digits and "-", "_", ".", ":", starting with a letter
// or digit.
func NewWorkflow(name string) *Workflow {
	return &Workflow{name: name}
}

// Name returns the workflow's name.
func (w *Workflow) Name() string { return w.name }

// Step adds a step and returns the workflow, so that calls chain. Step names
// follow the rules of workflow names and are unique within the workflow. A
// step without [Parents] starts when the run starts; a step with parents
// starts once all of them have completed.
func (w *Workflow) Step(name string, fn StepFunc, opts ...StepOption) *Workflow {
	s := &stepDef{name: name, fn: fn}
	for _, opt := range opts {
		opt.applyToStep(s)
	}
	w.steps = append(w.steps, s)
	return w
}

// OnEvents makes pushed events with any of these keys (e.g. "user:create")
// trigger a run of the workflow, with the event's payload as input. Keys
// follow the rules of workflow names.
func (w *Workflow) OnEvents(keys ...string) *Workflow {
	w.onEvents = append(w.onEvents, keys...)
	return w
}

// StepOption configures a step; see [Workflow.Step].
type StepOption interface {
	applyToStep(*stepDef)
}

type stepOptionFunc func(*stepDef)

func (f stepOptionFunc) applyToStep(s *stepDef) { f(s) }

// Parents makes the step wait for the named steps of the same workflow to
// complete; their outputs are then available through [Context.StepOutput].
func Parents(names ...string) StepOption {
	names = slices.Clone(names)
	return stepOptionFunc(func(s *stepDef) { s.parents = append(s.parents, names...) })
}

// Retries lets a failed attempt be retried up to n times (n+1 attempts in
// all), at most 100. The default is 0: the first failure fails the step and
// its run.
func Retries(n int) StepOption {
	return stepOptionFunc(func(s *stepDef) { s.retries = n })
}

// Backoff sets the base of the exponential delay the engine waits before a
// retry: base before the second attempt, 2×base before the third, and so on.
// Millisecond precision, at most an hour.
func Backoff(base time.Duration) StepOption {
	return stepOptionFunc(func(s *stepDef) { s.backoff = base })
}

// Timeout limits each attempt's execution time: when it passes, the step's
// context is cancelled and the engine marks the attempt timed out (retried
// if retries are left). The default, 0, is no limit. Millisecond precision,
// at most a week.
func Timeout(d time.Duration) StepOption {
	return stepOptionFunc(func(s *stepDef) { s.timeout = d })
}

// NonRetryable wraps err so that the step fails at once, without the retries
// it has left. NonRetryable(nil) is nil.
func NonRetryable(err error) error {
	if err == nil {
		return nil
	}
	return &nonRetryableError{err: err}
}

// IsNonRetryable reports whether err, or an error it wraps, was made by
// [NonRetryable].
func IsNonRetryable(err error) bool {
	var nr *nonRetryableError
	return errors.As(err, &nr)
}

type nonRetryableError struct{ err error }

func (e *nonRetryableError) Error() string { return e.err.Error() }
func (e *nonRetryableError) Unwrap() error { return e.err }

// Limits of a definition; the engine enforces the same ones.
const (
	maxNameLen     = 128
	maxSteps       = 256
	maxRetries     = 100
	maxBackoff     = time.Hour
	maxStepTimeout = 7 * 24 * time.Hour
)

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]*$`)

func checkName(kind, name string) error {
	switch {
	case name == "":
		return fmt.Errorf("empty %s name", kind)
	case len(name) > maxNameLen:
		return fmt.Errorf("%s name %.20q… is longer than %d characters", kind, name, maxNameLen)
	case !namePattern.MatchString(name):
		return fmt.Errorf("invalid %s name %q: use letters, digits and - _ . : starting with a letter or digit", kind, name)
	}
	return nil
}

// compiledWorkflow is a validated snapshot of a Workflow: later calls to
// Step on the Workflow do not change what a worker runs.
type compiledWorkflow struct {
	name  string
	steps map[string]*stepDef
	def   *runnelv1.WorkflowDefinition
}

// compile validates the workflow and returns its snapshot. The error names
// the workflow and the problem.
func (w *Workflow) compile() (*compiledWorkflow, error) {
	if w == nil {
		return nil, errors.New("nil workflow")
	}
	if err := w.validate(); err != nil {
		if w.name == "" {
			return nil, fmt.Errorf("invalid workflow: %w", err)
		}
		return nil, fmt.Errorf("invalid workflow %q: %w", w.name, err)
	}
	cw := &compiledWorkflow{
		name:  w.name,
		steps: make(map[string]*stepDef, len(w.steps)),
		def: &runnelv1.WorkflowDefinition{
			Name:     w.name,
			OnEvents: slices.Clone(w.onEvents),
		},
	}
	for _, s := range w.steps {
		c := *s
		c.parents = slices.Clone(s.parents)
		cw.steps[s.name] = &c
		cw.def.Steps = append(cw.def.Steps, &runnelv1.StepDefinition{
			Name:      s.name,
			Parents:   slices.Clone(s.parents),
			Retries:   int32(s.retries),
			BackoffMs: s.backoff.Milliseconds(),
			TimeoutMs: s.timeout.Milliseconds(),
		})
	}
	return cw, nil
}

func (w *Workflow) validate() error {
	if err := checkName("workflow", w.name); err != nil {
		return err
	}
	if len(w.steps) == 0 {
		return errors.New("no steps")
	}
	if len(w.steps) > maxSteps {
		return fmt.Errorf("%d steps, more than the limit of %d", len(w.steps), maxSteps)
	}
	for _, key := range w.onEvents {
		if err := checkName("event key", key); err != nil {
			return err
		}
	}
	byName := make(map[string]*stepDef, len(w.steps))
	for _, s := range w.steps {
		if err := checkName("step", s.name); err != nil {
			return err
		}
		if byName[s.name] != nil {
			return fmt.Errorf("duplicate step %q", s.name)
		}
		byName[s.name] = s
		if s.fn == nil {
			return fmt.Errorf("step %q has a nil function", s.name)
		}
		if s.retries < 0 {
			return fmt.Errorf("step %q: negative retries %d", s.name, s.retries)
		}
		if s.retries > maxRetries {
			return fmt.Errorf("step %q: retries %d over the limit of %d", s.name, s.retries, maxRetries)
		}
		if s.backoff < 0 {
			return fmt.Errorf("step %q: negative backoff %v", s.name, s.backoff)
		}
		if s.backoff > maxBackoff {
			return fmt.Errorf("step %q: backoff %v over the limit of %v", s.name, s.backoff, maxBackoff)
		}
		if s.backoff > 0 && s.backoff < time.Millisecond {
			return fmt.Errorf("step %q: backoff %v is below the 1ms precision", s.name, s.backoff)
		}
		if s.timeout < 0 {
			return fmt.Errorf("step %q: negative timeout %v", s.name, s.timeout)
		}
		if s.timeout > maxStepTimeout {
			return fmt.Errorf("step %q: timeout %v over the limit of %v", s.name, s.timeout, maxStepTimeout)
		}
		if s.timeout > 0 && s.timeout < time.Millisecond {
			return fmt.Errorf("step %q: timeout %v is below the 1ms precision", s.name, s.timeout)
		}
	}
	for _, s := range w.steps {
		seen := make(map[string]bool, len(s.parents))
		for _, p := range s.parents {
			if byName[p] == nil {
				return fmt.Errorf("step %q: unknown parent step %q", s.name, p)
			}
			if seen[p] {
				return fmt.Errorf("step %q: parent %q listed twice", s.name, p)
			}
			seen[p] = true
		}
	}
	if cycle := findCycle(w.steps, byName); cycle != nil {
		if len(cycle) == 2 {
			return fmt.Errorf("step %q depends on itself", cycle[0])
		}
		return fmt.Errorf("steps form a cycle (each waits for the next): %s", strings.Join(cycle, " -> "))
	}
	return nil
}

// findCycle returns a dependency cycle as a path that starts and ends with
// the same step (a -> b -> a: b is a parent of a, a a parent of b), or nil.
// Steps are visited in declaration order, so the result is deterministic.
func findCycle(steps []*stepDef, byName map[string]*stepDef) []string {
	const (
		unvisited = iota
		onPath
		done
	)
	state := make(map[string]int, len(steps))
	var path []string
	var visit func(s *stepDef) []string
	visit = func(s *stepDef) []string {
		state[s.name] = onPath
		path = append(path, s.name)
		for _, p := range s.parents {
			switch state[p] {
			case onPath:
				i := slices.Index(path, p)
				return append(slices.Clone(path[i:]), p)
			case unvisited:
				if c := visit(byName[p]); c != nil {
					return c
				}
			}
		}
		path = path[:len(path)-1]
		state[s.name] = done
		return nil
	}
	for _, s := range steps {
		if state[s.name] == unvisited {
			if c := visit(s); c != nil {
				return c
			}
		}
	}
	return nil
}
