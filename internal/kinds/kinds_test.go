package kinds_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/kinds"
)

func TestTerminal(t *testing.T) {
	t.Parallel()
	for _, s := range []kinds.RunStatus{kinds.RunQueued, kinds.RunRunning} {
		require.False(t, s.Terminal(), s)
		require.True(t, s.Valid(), s)
	}
	for _, s := range []kinds.RunStatus{kinds.RunCompleted, kinds.RunFailed, kinds.RunCancelled, kinds.RunTimedOut} {
		require.True(t, s.Terminal(), s)
		require.True(t, s.Valid(), s)
	}
	require.False(t, kinds.RunStatus("").Valid())
	require.False(t, kinds.RunStatus("pending").Valid(), "a step state, not a run state")

	for _, s := range []kinds.StepStatus{kinds.StepPending, kinds.StepQueued, kinds.StepRunning} {
		require.False(t, s.Terminal(), s)
	}
	for _, s := range []kinds.StepStatus{kinds.StepCompleted, kinds.StepFailed, kinds.StepCancelled, kinds.StepTimedOut} {
		require.True(t, s.Terminal(), s)
	}

	for _, typ := range kinds.TerminalEventTypes() {
		require.True(t, typ.Terminal(), typ)
	}
	for _, typ := range []kinds.EventType{kinds.EventRunStarted, kinds.EventStepCompleted, kinds.EventStepStream, kinds.EventStepTimedOut} {
		require.False(t, typ.Terminal(), typ)
	}
}
