package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/demo"
)

// POST /api/v1/events triggers the workflows registered OnEvents for the key,
// with the payload as input and the event's metadata.
func TestHTTPEvents(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, n *node) {
		wf := runnel.NewWorkflow("welcome").OnEvents("user:create").Step("greet", func(ctx runnel.Context) (any, error) {
			var in struct{ Name string }
			if err := ctx.WorkflowInput(&in); err != nil {
				return nil, err
			}
			return map[string]string{"hello": in.Name, "source": ctx.AdditionalMetadata()["source"]}, nil
		})
		startWorker(t, n, "w", 2, wf)
		api, tok := n.url+"/api/v1", n.srv.AdminToken

		status, body := call(t, "POST", api+"/events", tok, `{"key": "user:create", "payload": {"name": "ada"}, "additionalMetadata": {"source": "signup"}}`)
		require.Equal(t, http.StatusAccepted, status, "%v", body)
		ids := body["runIds"].([]any)
		require.Len(t, ids, 1)
		run, _ := waitRun(t, n, ids[0].(string))
		require.Equal(t, runnel.RunCompleted, run.Status, run.Error)
		require.JSONEq(t, `{"greet": {"hello": "ada", "source": "signup"}}`, string(run.Output))
		require.Equal(t, map[string]string{"source": "signup"}, run.AdditionalMetadata)

		status, body = call(t, "POST", api+"/events", tok, `{"key": "nobody:listens", "payload": {}}`)
		require.Equal(t, http.StatusAccepted, status)
		require.Empty(t, body["runIds"])
		status, body = call(t, "POST", api+"/events", tok, `{"payload": {}}`)
		requireAPIError(t, status, body, 400, "invalid_argument", "key")
		status, body = call(t, "POST", api+"/events", tok, `{"key": "bad key", "payload": {}}`)
		requireAPIError(t, status, body, 400, "invalid_argument", "key")
	})
}

// GET /api/v1/stream follows every run carrying a metadata pair, children
// included, and stays open; browser tokens must be scoped to that pair.
func TestHTTPMetadataStream(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, n *node) {
		startWorker(t, n, "demo", 8, demo.Workflows()...)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		api, tok := n.url+"/api/v1", n.srv.AdminToken

		status, body := call(t, "POST", api+"/tokens", tok, `{"metaKey": "streamKey", "metaValue": "sk-1"}`)
		require.Equal(t, 201, status, "%v", body)
		browser := body["token"].(string)

		req, err := http.NewRequestWithContext(ctx, "GET", api+"/stream?metaKey=streamKey&metaValue=sk-1&token="+browser, nil)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, 200, resp.StatusCode)
		require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))

		parentID, err := n.client.Admin().RunWorkflow(ctx, "demo-parent", map[string]int{"n": 2},
			runnel.WithAdditionalMetadata(map[string]string{"streamKey": "sk-1"}))
		require.NoError(t, err)
		_, err = n.client.Admin().RunWorkflow(ctx, "demo-text", map[string]int{"chunks": 2, "intervalMs": 1},
			runnel.WithAdditionalMetadata(map[string]string{"streamKey": "other"}))
		require.NoError(t, err)

		// Read frames until the parent and both children completed.
		completed := map[string]bool{}
		runs := map[string]bool{}
		var lastID string
		sc := bufio.NewScanner(resp.Body)
		var id, event string
		for len(completed) < 3 && sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "id: "):
				id = strings.TrimPrefix(line, "id: ")
				require.NotEqual(t, lastID, id)
				lastID = id
			case strings.HasPrefix(line, "event: "):
				event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				var d struct{ RunID string }
				require.NoError(t, json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &d))
				runs[d.RunID] = true
				if event == "run.completed" {
					completed[d.RunID] = true
				}
			}
		}
		require.NoError(t, sc.Err())
		require.Len(t, runs, 3, "the parent and its two children, not the other run")
		require.True(t, completed[parentID])

		// Scope checks.
		status, body = call(t, "GET", api+"/stream?metaKey=streamKey&metaValue=sk-2", browser, "")
		requireAPIError(t, status, body, 403, "permission_denied", "metadata pair")
		status, body = call(t, "GET", api+"/stream?metaValue=x", tok, "")
		requireAPIError(t, status, body, 400, "invalid_argument", "metaKey")
		status, body = call(t, "POST", api+"/tokens", tok, `{"runId": "`+parentID+`"}`)
		require.Equal(t, 201, status)
		status, body = call(t, "GET", api+"/stream?metaKey=streamKey&metaValue=sk-1", body["token"].(string), "")
		requireAPIError(t, status, body, 403, "permission_denied", "metadata pair")
		// The parent's page lists its children.
		status, body = call(t, "GET", api+"/runs/"+parentID, tok, "")
		require.Equal(t, 200, status)
		require.Len(t, body["children"], 2)
	})
}
