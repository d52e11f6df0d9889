package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/demo"
)

// A 4 MiB payload round-trips byte-identical; 4 MiB + 1 is refused with an
// error naming the limit, and the run's other events are unaffected.
func TestPayloadLimit(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, n *node) {
		startWorker(t, n, "demo", 4, demo.Workflows()...)
		ctx := context.Background()

		runID, err := n.client.Admin().RunWorkflow(ctx, "demo-file", map[string]int{"bytes": runnel.MaxPayloadSize})
		require.NoError(t, err)
		run, events := waitRun(t, n, runID)
		require.Equal(t, runnel.RunCompleted, run.Status, run.Error)
		// One payload per attempt (a machine loaded enough to lose the
		// worker may run the step twice): check the completed attempt's.
		var payload []byte
		final := run.Steps[0].Attempt
		for _, ev := range events {
			if ev.Type == runnel.EventStepStream && ev.Attempt == final {
				require.Nil(t, payload, "one payload per attempt expected")
				payload = ev.Payload
			}
		}
		require.Len(t, payload, runnel.MaxPayloadSize)
		require.True(t, bytes.Equal(demo.FilePayload(runnel.MaxPayloadSize), payload))
		sum := sha256.Sum256(payload)
		require.Contains(t, string(run.Output), hex.EncodeToString(sum[:]))

		runID, err = n.client.Admin().RunWorkflow(ctx, "demo-file", map[string]int{"bytes": runnel.MaxPayloadSize + 1})
		require.NoError(t, err)
		run, events = waitRun(t, n, runID)
		require.Equal(t, runnel.RunFailed, run.Status)
		require.Contains(t, run.Error, "4 MiB")
		var types []runnel.EventType
		for _, ev := range events {
			types = append(types, ev.Type)
		}
		require.Equal(t, []runnel.EventType{
			runnel.EventRunStarted, runnel.EventStepStarted, runnel.EventStepFailed, runnel.EventRunFailed,
		}, types)
	})
}

// Many stream events from one step arrive in the order they were put, and a
// late subscriber resuming after any position gets exactly the rest.
func TestStreamOrderAndResume(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, n *node) {
		startWorker(t, n, "demo", 4, demo.Workflows()...)
		ctx := context.Background()
		const chunks = 2000
		runID, err := n.client.Admin().RunWorkflow(ctx, "demo-text", map[string]int{"chunks": chunks, "intervalMs": 0})
		require.NoError(t, err)
		run, events := waitRun(t, n, runID)
		require.Equal(t, runnel.RunCompleted, run.Status, run.Error)
		var text bytes.Buffer
		for _, ev := range finalAttempt(events) {
			if ev.Type == runnel.EventStepStream {
				text.Write(ev.Payload)
			}
		}
		require.Equal(t, demo.TextOutput(chunks), text.String())

		for _, cut := range []int{0, 1, len(events) / 2, len(events) - 2} {
			var rest []runnel.Event
			for ev, err := range n.client.Listener().Stream(ctx, runID, runnel.After(events[cut].Position)) {
				require.NoError(t, err)
				rest = append(rest, ev)
			}
			require.Equal(t, events[cut+1:], rest, "resume after event %d", cut)
		}
	})
}
