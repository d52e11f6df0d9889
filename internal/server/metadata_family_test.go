package server_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/demo"
)

// The seed's "streaming by additional metadata": one subscription opened
// before, one during and one after a demo-parent run with n = 10 whose
// children each spawn a grandchild (21 runs, all inheriting the pair)
// receive every event of every run exactly once, each run's events in
// order; resuming after any delivered position gives exactly the rest.
func TestMetadataSubscriptionFollowsParentChildrenGrandchildren(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, n *node) {
		// The parent and every child wait for their children while holding
		// a slot: 21 runs at once.
		startWorker(t, n, "demo", 32, demo.Workflows()...)
		ctx := context.Background()
		meta := map[string]string{"streamKey": "sk-family"}

		before := subscribeMeta(n.client, "streamKey", "sk-family")
		parentID, err := n.client.Admin().RunWorkflow(ctx, "demo-parent",
			map[string]int{"n": 10, "spawn": 1, "intervalMs": 5}, runnel.WithAdditionalMetadata(meta))
		require.NoError(t, err)
		before.wait(t, 30) // the family is streaming
		during := subscribeMeta(n.client, "streamKey", "sk-family")
		parent, _ := waitRun(t, n, parentID)
		require.Equal(t, runnel.RunCompleted, parent.Status, parent.Error)

		// The stored log of the whole family, run by run.
		p, err := n.srv.Engine().Authenticate(ctx, n.srv.AdminToken)
		require.NoError(t, err)
		family := []string{parentID}
		for i := 0; i < len(family); i++ {
			kids, err := n.srv.Engine().ListChildRuns(ctx, p.TenantID, family[i])
			require.NoError(t, err)
			for _, k := range kids {
				require.Equal(t, "sk-family", k.Metadata["streamKey"], "children inherit the pair")
				family = append(family, k.ID)
			}
		}
		require.Len(t, family, 21)
		var perRun [][]runnel.Event
		for _, id := range family {
			_, evs := waitRun(t, n, id)
			perRun = append(perRun, evs)
		}
		full := merge(t, n, perRun...)

		after := subscribeMeta(n.client, "streamKey", "sk-family")
		for name, s := range map[string]*metaSub{"before": before, "during": during, "after": after} {
			requireLog(t, n, full, s.wait(t, len(full)), "subscription opened "+name)
			s.stop(t)
		}
		for _, i := range []int{0, 1, len(full) / 3, len(full) / 2, len(full) - 2} {
			s := subscribeMeta(n.client, "streamKey", "sk-family", runnel.After(full[i].Position))
			requireLog(t, n, full[i+1:], s.wait(t, len(full)-i-1), "resumed")
			s.stop(t)
		}
	})
}
