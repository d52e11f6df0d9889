package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/demo"
)

// GET /api/v1/workers lists the tenant's connected workers with their SDK,
// slots and running steps; another tenant sees none of them, a browser
// token is refused, and a stopped worker leaves the list.
func TestListWorkers(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, n *node) {
		ctx := context.Background()
		admin := n.srv.AdminToken
		stop := startWorker(t, n, "wk-a", 2, demo.Workflows()...)
		runID, err := n.client.Admin().RunWorkflow(ctx, demo.Slow, map[string]int{"seconds": 30})
		require.NoError(t, err)
		defer func() { _ = n.client.Admin().CancelRun(ctx, runID) }()

		// Polled: the step is assigned a moment after the trigger. Under
		// load the worker may also reconnect, leaving the list empty for a
		// moment.
		var w map[string]any
		require.Eventually(t, func() bool {
			status, body := call(t, "GET", n.url+"/api/v1/workers", admin, "")
			if status != 200 {
				return false
			}
			workers, _ := body["workers"].([]any)
			if len(workers) != 1 {
				return false
			}
			w = workers[0].(map[string]any)
			return len(w["running"].([]any)) == 1
		}, 30*time.Second, 20*time.Millisecond, "the worker never showed its running step")
		require.Equal(t, "wk-a", w["name"])
		require.Equal(t, "go", w["sdk"])
		require.True(t, strings.HasPrefix(w["sdkVersion"].(string), "go1."), "sdkVersion %v", w["sdkVersion"])
		require.Contains(t, w["userAgent"], "connect-go/")
		require.EqualValues(t, 2, w["slots"])
		require.EqualValues(t, 1, w["slotsInUse"])
		require.Contains(t, w["workflows"], demo.Slow)
		require.NotNil(t, w["heartbeatAt"])
		running := w["running"].([]any)[0].(map[string]any)
		require.Equal(t, runID, running["runId"])
		require.Equal(t, demo.Slow, running["workflow"])
		require.Equal(t, "slow", running["step"])
		require.EqualValues(t, 1, running["attempt"])

		tokB, err := n.client.Admin().CreateToken(ctx, "tenant-b", "")
		require.NoError(t, err)
		status, body := call(t, "GET", n.url+"/api/v1/workers", tokB, "")
		require.Equal(t, 200, status, "%v", body)
		require.Empty(t, body["workers"], "another tenant's workers are listed")

		status, body = call(t, "POST", n.url+"/api/v1/tokens", admin, `{"runId": "`+runID+`"}`)
		require.Equal(t, 201, status, "%v", body)
		status, body = call(t, "GET", n.url+"/api/v1/workers", body["token"].(string), "")
		requireAPIError(t, status, body, 403, "permission_denied", "read-only")
		status, body = call(t, "GET", n.url+"/api/v1/workers?name=wk-a", admin, "")
		requireAPIError(t, status, body, 400, "invalid_argument", "unknown query parameter")

		stop()
		require.Eventually(t, func() bool {
			status, body := call(t, "GET", n.url+"/api/v1/workers", admin, "")
			workers, _ := body["workers"].([]any)
			return status == 200 && len(workers) == 0
		}, 30*time.Second, 20*time.Millisecond, "a stopped worker is still listed")
	})
}
