package runnel_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel"
)

// The SDK's statuses and event types are derived from the engine's
// (internal/kinds); their spelling is part of the public API and the wire
// format, so it must not change.
func TestStatusAndEventTypeValues(t *testing.T) {
	t.Parallel()
	require.Equal(t, []runnel.RunStatus{"queued", "running", "completed", "failed", "cancelled", "timed_out"},
		[]runnel.RunStatus{runnel.RunQueued, runnel.RunRunning, runnel.RunCompleted, runnel.RunFailed, runnel.RunCancelled, runnel.RunTimedOut})
	require.Equal(t, []runnel.StepStatus{"pending", "queued", "running", "completed", "failed", "cancelled", "timed_out"},
		[]runnel.StepStatus{runnel.StepPending, runnel.StepQueued, runnel.StepRunning, runnel.StepCompleted, runnel.StepFailed, runnel.StepCancelled, runnel.StepTimedOut})
	require.Equal(t, []runnel.EventType{
		"run.started", "run.completed", "run.failed", "run.cancelled", "run.timed_out",
		"step.started", "step.completed", "step.failed", "step.cancelled", "step.timed_out", "step.stream", "step.stream_closed",
	}, []runnel.EventType{
		runnel.EventRunStarted, runnel.EventRunCompleted, runnel.EventRunFailed, runnel.EventRunCancelled, runnel.EventRunTimedOut,
		runnel.EventStepStarted, runnel.EventStepCompleted, runnel.EventStepFailed, runnel.EventStepCancelled, runnel.EventStepTimedOut, runnel.EventStepStream, runnel.EventStepStreamClosed,
	})
	require.True(t, runnel.RunTimedOut.Terminal())
	require.False(t, runnel.RunRunning.Terminal())
	require.True(t, runnel.StepCancelled.Terminal())
	require.False(t, runnel.StepPending.Terminal())
	require.True(t, runnel.EventRunFailed.Terminal())
	require.False(t, runnel.EventStepFailed.Terminal())
}
