// Package kinds defines, once, the words the SDK and the engine share: the
// statuses of runs and step runs and the types of run events. The engine
// stores these strings and the SDK receives them, so both must spell them
// the same. It imports nothing, so the SDK (package runnel) can depend on it
// without pulling in the engine or a store; package store aliases these
// types, and the SDK derives its public constants from them.
package kinds

// RunStatus is the state of a run.
type RunStatus string

// Run states. Completed, failed, cancelled and timed out are terminal.
const (
	RunQueued    RunStatus = "queued"
	RunRunning   RunStatus = "running"
	RunCompleted RunStatus = "completed"
	RunFailed    RunStatus = "failed"
	RunCancelled RunStatus = "cancelled"
	RunTimedOut  RunStatus = "timed_out"
)

// Terminal reports whether no further transition can happen.
func (s RunStatus) Terminal() bool {
	switch s {
	case RunCompleted, RunFailed, RunCancelled, RunTimedOut:
		return true
	}
	return false
}

// Valid reports whether s is one of the run states.
func (s RunStatus) Valid() bool {
	return s == RunQueued || s == RunRunning || s.Terminal()
}

// StepStatus is the state of a step run (of its current attempt).
type StepStatus string

// Step run states. Completed, failed, cancelled and timed out are terminal.
const (
	// StepPending: waiting for its parents to complete (not claimable).
	StepPending StepStatus = "pending"
	// StepQueued: ready to run once its AvailableAt has passed.
	StepQueued    StepStatus = "queued"
	StepRunning   StepStatus = "running"
	StepCompleted StepStatus = "completed"
	StepFailed    StepStatus = "failed"
	StepCancelled StepStatus = "cancelled"
	StepTimedOut  StepStatus = "timed_out"
)

// Terminal reports whether the step run will not run again.
func (s StepStatus) Terminal() bool {
	switch s {
	case StepCompleted, StepFailed, StepCancelled, StepTimedOut:
		return true
	}
	return false
}

// EventType is the kind of a run event.
type EventType string

// Event types. A run's log ends with exactly one terminal run event
// (completed, failed, cancelled or timed out).
const (
	EventRunStarted   EventType = "run.started"
	EventRunCompleted EventType = "run.completed"
	EventRunFailed    EventType = "run.failed"
	EventRunCancelled EventType = "run.cancelled"
	EventRunTimedOut  EventType = "run.timed_out"

	EventStepStarted   EventType = "step.started"
	EventStepCompleted EventType = "step.completed"
	EventStepFailed    EventType = "step.failed"
	EventStepCancelled EventType = "step.cancelled"
	EventStepTimedOut  EventType = "step.timed_out"
	// EventStepStream carries data a step put on its stream.
	EventStepStream EventType = "step.stream"
	// EventStepStreamClosed says a step declared one of its streams finished
	// (Event.Stream names it); nothing more is stored on it by that attempt.
	EventStepStreamClosed EventType = "step.stream_closed"
)

// TerminalEventTypes are the event types that end a run, in a fixed order.
func TerminalEventTypes() []EventType {
	return []EventType{EventRunCompleted, EventRunFailed, EventRunCancelled, EventRunTimedOut}
}

// Terminal reports whether events of this type end their run.
func (t EventType) Terminal() bool {
	switch t {
	case EventRunCompleted, EventRunFailed, EventRunCancelled, EventRunTimedOut:
		return true
	}
	return false
}
