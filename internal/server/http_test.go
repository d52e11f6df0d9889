package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/clock/clocktest"
	"github.com/runnel-dev/runnel/internal/demo"
	"github.com/runnel-dev/runnel/internal/server"
)

// call makes an HTTP request with a token and returns the status and the
// decoded JSON body.
func call(t *testing.T, method, url, token, body string, header ...string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var out map[string]any
	if len(raw) > 0 {
		require.NoError(t, json.Unmarshal(raw, &out), "body %s", raw)
	}
	return resp.StatusCode, out
}

func requireAPIError(t *testing.T, status int, body map[string]any, wantStatus int, wantCode, wantMsg string) {
	t.Helper()
	require.Equal(t, wantStatus, status, "%v", body)
	e, ok := body["error"].(map[string]any)
	require.True(t, ok, "no error object in %v", body)
	require.Equal(t, wantCode, e["code"])
	require.Contains(t, e["message"], wantMsg)
}

// Every endpoint of the HTTP API, with its documented errors.
func TestHTTPAPI(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, n *node) {
		startWorker(t, n, "demo", 4, demo.Workflows()...)
		api, tok := n.url+"/api/v1", n.srv.AdminToken

		// Trigger.
		status, body := call(t, "POST", api+"/workflows/demo-text/runs", tok,
			`{"input": {"chunks": 3, "intervalMs": 1}, "additionalMetadata": {"user": "u1"}}`)
		require.Equal(t, http.StatusCreated, status, "%v", body)
		runID := body["runId"].(string)
		_, events := waitRun(t, n, runID)
		require.Equal(t, runnel.EventRunCompleted, events[len(events)-1].Type)

		// Trigger errors: unknown workflow, bad JSON, unknown field, input not
		// JSON-valid in a field, body too large.
		status, body = call(t, "POST", api+"/workflows/nope/runs", tok, `{}`)
		requireAPIError(t, status, body, 404, "not_found", `unknown workflow "nope"`)
		status, body = call(t, "POST", api+"/workflows/demo-text/runs", tok, `{"input": `)
		requireAPIError(t, status, body, 400, "invalid_argument", "invalid request body")
		status, body = call(t, "POST", api+"/workflows/demo-text/runs", tok, `{"inputs": {}}`)
		requireAPIError(t, status, body, 400, "invalid_argument", `unknown field "inputs"`)
		status, body = call(t, "POST", api+"/workflows/demo-text/runs", tok, `{"additionalMetadata": {"k": 1}}`)
		requireAPIError(t, status, body, 400, "invalid_argument", "additionalMetadata")
		status, body = call(t, "POST", api+"/workflows/demo-text/runs", tok, `{"input": "`+strings.Repeat("x", 5<<20)+`"}`)
		requireAPIError(t, status, body, 413, "resource_exhausted", "byte limit")

		// Get.
		status, body = call(t, "GET", api+"/runs/"+runID, tok, "")
		require.Equal(t, 200, status)
		require.Equal(t, "completed", body["status"])
		require.Equal(t, map[string]any{"user": "u1"}, body["additionalMetadata"])
		steps := body["steps"].([]any)
		require.Len(t, steps, 1)
		step := steps[0].(map[string]any)
		require.Equal(t, "generate", step["step"])
		require.Equal(t, float64(1), step["attempt"])
		require.Len(t, step["attempts"], 1)
		require.Equal(t, map[string]any{"text": demo.TextOutput(3)}, step["output"])
		status, body = call(t, "GET", api+"/runs/0193a1b2-0000-7000-8000-000000000000", tok, "")
		requireAPIError(t, status, body, 404, "not_found", "unknown run")

		// List with filters and paging.
		status, body = call(t, "POST", api+"/workflows/demo-flaky/runs", tok, `{"input": {"failAttempts": 0}}`)
		require.Equal(t, 201, status)
		flakyID := body["runId"].(string)
		waitRun(t, n, flakyID)
		status, body = call(t, "GET", api+"/runs?limit=1", tok, "")
		require.Equal(t, 200, status)
		require.Len(t, body["runs"], 1)
		require.Equal(t, flakyID, body["runs"].([]any)[0].(map[string]any)["runId"], "newest first")
		status, body = call(t, "GET", api+"/runs?limit=1&before="+body["nextBefore"].(string), tok, "")
		require.Equal(t, 200, status)
		require.Equal(t, runID, body["runs"].([]any)[0].(map[string]any)["runId"])
		for q, want := range map[string]int{"workflow=demo-text": 1, "status=completed": 2, "meta=user:u1": 1, "meta=user:u2": 0} {
			status, body = call(t, "GET", api+"/runs?"+q, tok, "")
			require.Equal(t, 200, status)
			require.Len(t, body["runs"], want, q)
		}
		for q, msg := range map[string]string{"status=bogus": "unknown run status", "meta=nocolon": "want key:value",
			"limit=0": "invalid limit", "limit=5000": "out of range", "colour=red": "unknown query parameter"} {
			status, body = call(t, "GET", api+"/runs?"+q, tok, "")
			requireAPIError(t, status, body, 400, "invalid_argument", msg)
		}

		// Cancel: a finished run is a conflict; a running one is cancelled.
		status, body = call(t, "POST", api+"/runs/"+runID+"/cancel", tok, "")
		requireAPIError(t, status, body, 409, "failed_precondition", "already finished")
		status, body = call(t, "POST", api+"/workflows/demo-slow/runs", tok, `{"input": {"seconds": 30}}`)
		require.Equal(t, 201, status)
		slowID := body["runId"].(string)
		status, body = call(t, "POST", api+"/runs/"+slowID+"/cancel", tok, "")
		require.Equal(t, 200, status, "%v", body)
		require.Equal(t, "cancelled", body["status"])

		// Workflows.
		status, body = call(t, "GET", api+"/workflows", tok, "")
		require.Equal(t, 200, status)
		require.Len(t, body["workflows"], len(demo.Workflows()))

		// Tokens: bad scope and ttl.
		status, body = call(t, "POST", api+"/tokens", tok, `{}`)
		requireAPIError(t, status, body, 400, "invalid_argument", "needs a scope")
		status, body = call(t, "POST", api+"/tokens", tok, `{"runId": "`+runID+`", "ttl": "forever"}`)
		requireAPIError(t, status, body, 400, "invalid_argument", "invalid ttl")
		status, body = call(t, "POST", api+"/tokens", tok, `{"runId": "`+runID+`", "ttl": "48h"}`)
		requireAPIError(t, status, body, 400, "invalid_argument", "out of range")
		status, body = call(t, "POST", api+"/tokens", tok, `{"runId": "0193a1b2-0000-7000-8000-000000000000"}`)
		requireAPIError(t, status, body, 404, "not_found", "unknown run")

		// Auth: missing and wrong tokens; unknown endpoint.
		status, body = call(t, "GET", api+"/runs", "", "")
		requireAPIError(t, status, body, 401, "unauthenticated", "missing token")
		status, body = call(t, "GET", api+"/runs", "rnl_nope", "")
		requireAPIError(t, status, body, 401, "unauthenticated", "invalid token")
		status, body = call(t, "GET", api+"/nothing", tok, "")
		requireAPIError(t, status, body, 404, "not_found", "no endpoint")
	})
}

// sseFrame is one parsed SSE message.
type sseFrame struct{ id, event, data string }

// readSSE reads a whole SSE response (until the server ends it), checking
// the framing line by line: every message is id/event/data lines or a
// comment, then a blank line.
func readSSE(t *testing.T, r io.Reader) (frames []sseFrame, comments int) {
	t.Helper()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	var cur sseFrame
	inFrame := false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if inFrame {
				frames = append(frames, cur)
			}
			cur, inFrame = sseFrame{}, false
		case strings.HasPrefix(line, ": "):
			require.False(t, inFrame, "comment inside a frame")
			comments++
		case strings.HasPrefix(line, "id: "):
			require.Empty(t, cur.id, "two id lines")
			cur.id, inFrame = strings.TrimPrefix(line, "id: "), true
		case strings.HasPrefix(line, "event: "):
			require.Empty(t, cur.event, "two event lines")
			cur.event, inFrame = strings.TrimPrefix(line, "event: "), true
		case strings.HasPrefix(line, "data: "):
			require.Empty(t, cur.data, "two data lines: framing broken")
			cur.data, inFrame = strings.TrimPrefix(line, "data: "), true
		default:
			t.Fatalf("unexpected SSE line %q", line)
		}
	}
	require.NoError(t, sc.Err())
	require.False(t, inFrame, "stream ended inside a frame")
	return frames, comments
}

func openSSE(t *testing.T, url, token string, header ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// The SSE stream: ids are positions, one data line per event even for
// payloads with newlines and CR, base64 for binary, end after the terminal
// event, and resume with Last-Event-ID or ?after= gives exactly the rest.
func TestSSEStream(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, n *node) {
		nasty := runnel.NewWorkflow("nasty").Step("s", func(ctx runnel.Context) (any, error) {
			for _, p := range [][]byte{[]byte("line1\nline2"), []byte("cr\rlf\r\n"), []byte("data: fake\n\nid: 9"), {0xff, 0xfe, '\n'}} {
				if err := ctx.PutStream(p); err != nil {
					return nil, err
				}
			}
			return nil, nil
		})
		startWorker(t, n, "w", 2, nasty)
		runID, err := n.client.Admin().RunWorkflow(context.Background(), "nasty", nil)
		require.NoError(t, err)
		_, events := waitRun(t, n, runID)

		resp := openSSE(t, n.url+"/api/v1/runs/"+runID+"/stream", n.srv.AdminToken)
		require.Equal(t, 200, resp.StatusCode)
		require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
		require.Equal(t, "no-cache", resp.Header.Get("Cache-Control"))
		require.Equal(t, "no", resp.Header.Get("X-Accel-Buffering"))
		frames, _ := readSSE(t, resp.Body)
		require.Len(t, frames, len(events)+1)
		require.Equal(t, sseFrame{event: "end", data: fmt.Sprintf(`{"runId":%q}`, runID)}, frames[len(frames)-1])
		var payloads []string
		for i, ev := range events {
			f := frames[i]
			require.Equal(t, string(ev.Position), f.id)
			require.Equal(t, string(ev.Type), f.event)
			var data map[string]any
			require.NoError(t, json.Unmarshal([]byte(f.data), &data))
			require.Equal(t, runID, data["runId"])
			require.Equal(t, "nasty", data["workflow"])
			require.Equal(t, string(ev.Type), data["type"])
			require.NotEmpty(t, data["timestamp"])
			if ev.Type == runnel.EventStepStream {
				require.Equal(t, "s", data["step"])
				require.Equal(t, float64(1), data["attempt"])
				payloads = append(payloads, fmt.Sprint(data["payload"], "|", data["encoding"]))
			}
		}
		require.Equal(t, []string{"line1\nline2|<nil>", "cr\rlf\r\n|<nil>", "data: fake\n\nid: 9|<nil>", "//4K|base64"}, payloads)

		// Resume: Last-Event-ID wins over ?after=, which wins over from.
		mid := frames[3].id
		resp = openSSE(t, n.url+"/api/v1/runs/"+runID+"/stream?from=now&after="+frames[1].id, n.srv.AdminToken, "Last-Event-ID", mid)
		rest, _ := readSSE(t, resp.Body)
		require.Equal(t, frames[4:], rest)
		resp = openSSE(t, n.url+"/api/v1/runs/"+runID+"/stream?after="+frames[1].id+"&token="+n.srv.AdminToken, "")
		rest, _ = readSSE(t, resp.Body)
		require.Equal(t, frames[2:], rest)
		// After the terminal event: just the end.
		resp = openSSE(t, n.url+"/api/v1/runs/"+runID+"/stream", n.srv.AdminToken, "Last-Event-ID", frames[len(frames)-2].id)
		rest, _ = readSSE(t, resp.Body)
		require.Equal(t, frames[len(frames)-1:], rest)
		// Types filter.
		resp = openSSE(t, n.url+"/api/v1/runs/"+runID+"/stream?types=step.stream,run.completed", n.srv.AdminToken)
		rest, _ = readSSE(t, resp.Body)
		require.Len(t, rest, 4+1+1)

		// Errors come as JSON before the stream starts.
		for _, tc := range []struct {
			query, lastID string
			status        int
			msg           string
		}{
			{"?from=yesterday", "", 400, "invalid from"},
			{"?after=garbage", "", 400, "invalid position"},
			{"", "00000000.5", 400, "another event log"},
			{"?types=step.nope", "", 400, "unknown event type"},
		} {
			status, body := call(t, "GET", n.url+"/api/v1/runs/"+runID+"/stream"+tc.query, n.srv.AdminToken, "", "Last-Event-ID", tc.lastID)
			requireAPIError(t, status, body, tc.status, "invalid_argument", tc.msg)
		}
	})
}

// Idle SSE streams get a comment at least every heartbeat.
func TestSSEHeartbeat(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, n *node) {
		startWorker(t, n, "demo", 1, demo.Workflows()...)
		runID, err := n.client.Admin().RunWorkflow(context.Background(), "demo-slow", map[string]int{"seconds": 2})
		require.NoError(t, err)
		resp := openSSE(t, n.url+"/api/v1/runs/"+runID+"/stream?types=run.completed", n.srv.AdminToken)
		frames, comments := readSSE(t, resp.Body)
		require.Len(t, frames, 2) // run.completed, end
		require.GreaterOrEqual(t, comments, 2, "the first comment, then heartbeats while idle")
	}, func(cfg *server.Config) { cfg.Engine.SubscriptionHeartbeat = 100 * time.Millisecond })
}

// Tenants see only their own runs (404, so ids do not leak); a browser token
// reads only its run and writes nothing; an expired token is refused.
func TestHTTPIsolation(t *testing.T) {
	t.Parallel()
	for _, kind := range stores {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			var offset atomic.Int64 // the engine's clock, moved forward to expire tokens
			n := startNode(t, kind, func(cfg *server.Config) {
				cfg.Engine.Clock = clocktest.Offset(&offset)
			})
			httpIsolation(t, n, &offset)
		})
	}
}

func httpIsolation(t *testing.T, n *node, offset *atomic.Int64) {
	{
		startWorker(t, n, "demo", 2, demo.Workflows()...)
		ctx := context.Background()
		api := n.url + "/api/v1"
		tokB, err := n.client.Admin().CreateToken(ctx, "tenant-b", "")
		require.NoError(t, err)

		runA, err := n.client.Admin().RunWorkflow(ctx, "demo-text", map[string]int{"chunks": 2, "intervalMs": 1})
		require.NoError(t, err)
		waitRun(t, n, runA)
		runA2, err := n.client.Admin().RunWorkflow(ctx, "demo-text", map[string]int{"chunks": 2, "intervalMs": 1})
		require.NoError(t, err)
		waitRun(t, n, runA2)

		// Tenant B: read, list, cancel, stream, mint for A's run: all 404 or empty.
		status, body := call(t, "GET", api+"/runs/"+runA, tokB, "")
		requireAPIError(t, status, body, 404, "not_found", "unknown run")
		status, body = call(t, "GET", api+"/runs", tokB, "")
		require.Equal(t, 200, status)
		require.Empty(t, body["runs"])
		status, body = call(t, "POST", api+"/runs/"+runA+"/cancel", tokB, "")
		requireAPIError(t, status, body, 404, "not_found", "unknown run")
		status, body = call(t, "GET", api+"/runs/"+runA+"/stream", tokB, "")
		requireAPIError(t, status, body, 404, "not_found", "unknown run")
		status, body = call(t, "POST", api+"/tokens", tokB, `{"runId": "`+runA+`"}`)
		requireAPIError(t, status, body, 404, "not_found", "unknown run")
		status, body = call(t, "POST", api+"/workflows/demo-text/runs", tokB, `{}`)
		requireAPIError(t, status, body, 404, "not_found", "unknown workflow")

		// A browser token for runA.
		status, body = call(t, "POST", api+"/tokens", n.srv.AdminToken, `{"runId": "`+runA+`", "ttl": "1m"}`)
		require.Equal(t, 201, status, "%v", body)
		browser := body["token"].(string)
		status, _ = call(t, "GET", api+"/runs/"+runA, browser, "")
		require.Equal(t, 200, status)
		resp := openSSE(t, api+"/runs/"+runA+"/stream?token="+browser, "")
		require.Equal(t, 200, resp.StatusCode)
		frames, _ := readSSE(t, resp.Body)
		require.Equal(t, "end", frames[len(frames)-1].event)
		status, body = call(t, "GET", api+"/runs/"+runA2, browser, "")
		requireAPIError(t, status, body, 404, "not_found", "unknown run")
		status, body = call(t, "GET", api+"/runs/"+runA2+"/stream", browser, "")
		requireAPIError(t, status, body, 404, "not_found", "unknown run")
		for _, w := range [][2]string{
			{"POST", "/workflows/demo-text/runs"}, {"POST", "/runs/" + runA + "/cancel"}, {"GET", "/runs"},
			{"GET", "/workflows"}, {"POST", "/tokens"},
		} {
			status, body = call(t, w[0], api+w[1], browser, `{"runId": "`+runA+`"}`)
			requireAPIError(t, status, body, 403, "permission_denied", "")
		}

		// Expired: move the engine's clock past the token's ttl.
		offset.Add(int64(2 * time.Minute))
		status, body = call(t, "GET", api+"/runs/"+runA, browser, "")
		requireAPIError(t, status, body, 401, "unauthenticated", "expired")
		offset.Add(-int64(2 * time.Minute))
	}
}

// CORS: nothing allowed by default; configured origins get the headers and
// preflights.
func TestCORS(t *testing.T) {
	t.Parallel()
	n := startNode(t, "sqlite", func(cfg *server.Config) { cfg.CORSOrigins = []string{"http://app.example"} })
	for _, tc := range []struct {
		origin string
		allow  bool
	}{{"http://app.example", true}, {"http://evil.example", false}} {
		req, _ := http.NewRequest("OPTIONS", n.url+"/api/v1/runs", nil)
		req.Header.Set("Origin", tc.origin)
		req.Header.Set("Access-Control-Request-Method", "GET")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		if tc.allow {
			require.Equal(t, 204, resp.StatusCode)
			require.Equal(t, tc.origin, resp.Header.Get("Access-Control-Allow-Origin"))
			require.Contains(t, resp.Header.Get("Access-Control-Allow-Headers"), "Authorization")
		} else {
			require.Equal(t, 403, resp.StatusCode)
			require.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))
		}
		status, _ := call(t, "GET", n.url+"/api/v1/runs", n.srv.AdminToken, "", "Origin", tc.origin)
		require.Equal(t, 200, status)
	}
	plain := startNode(t, "sqlite")
	req, _ := http.NewRequest("OPTIONS", plain.url+"/api/v1/runs", nil)
	req.Header.Set("Origin", "http://app.example")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 403, resp.StatusCode)
	require.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))
}
