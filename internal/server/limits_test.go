package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/api"
	pb "github.com/runnel-dev/runnel/internal/gen/runnel/v1"
	"github.com/runnel-dev/runnel/internal/server"
)

// heldWorkflow streams "before", waits for release, then streams "after"
// and completes: a run that stays live as long as a test needs.
func heldWorkflow(release <-chan struct{}) *runnel.Workflow {
	return runnel.NewWorkflow("held").Step("s", func(ctx runnel.Context) (any, error) {
		if err := ctx.PutStream([]byte("before")); err != nil {
			return nil, err
		}
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return nil, ctx.PutStream([]byte("after"))
	})
}

// sseClient reads an SSE stream in the background and reports the ids
// (positions) of its events and whether it ended with `event: end`.
type sseClient struct {
	first chan struct{} // closed at the first event
	done  chan sseResult
}

type sseResult struct {
	ids   []string
	ended bool // an `event: end` frame arrived
	err   error
}

func followSSE(t *testing.T, url, token string) *sseClient {
	t.Helper()
	resp := openSSE(t, url, token)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	c := &sseClient{first: make(chan struct{}), done: make(chan sseResult, 1)}
	go func() {
		var r sseResult
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
		for sc.Scan() {
			switch line := sc.Text(); {
			case strings.HasPrefix(line, "id: "):
				if r.ids = append(r.ids, strings.TrimPrefix(line, "id: ")); len(r.ids) == 1 {
					close(c.first)
				}
			case line == "event: end":
				r.ended = true
			}
		}
		r.err = sc.Err()
		c.done <- r
	}()
	return c
}

// waitSubscribers waits until the node serves exactly want subscriptions.
func waitSubscribers(t *testing.T, n *node, want int) {
	t.Helper()
	require.Eventually(t, func() bool { return n.srv.Engine().Subscribers() == want }, 30*time.Second, 5*time.Millisecond,
		"want %d live subscriptions, have %d", want, n.srv.Engine().Subscribers())
}

// storedPositions returns the positions of a finished run's stored events.
func storedPositions(t *testing.T, n *node, runID string) []string {
	t.Helper()
	_, events := waitRun(t, n, runID)
	out := make([]string, len(events))
	for i, ev := range events {
		out[i] = string(ev.Position)
	}
	return out
}

// Subscriptions over the per-token and per-node limits are refused with
// 429 / ResourceExhausted naming the limit, whatever the kind (SSE or RPC,
// run or metadata); the subscribers already connected keep streaming and
// get exactly the stored log; places freed by ended subscriptions are
// taken again.
func TestSubscriberLimits(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, n *node) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		release := make(chan struct{})
		startWorker(t, n, "w", 2, heldWorkflow(release))
		admin := n.srv.AdminToken
		tokA, err := n.client.Admin().CreateToken(ctx, "default", "a")
		require.NoError(t, err)
		tokB, err := n.client.Admin().CreateToken(ctx, "default", "b")
		require.NoError(t, err)
		runID, err := n.client.Admin().RunWorkflow(ctx, "held", nil, runnel.WithAdditionalMetadata(map[string]string{"k": "v"}))
		require.NoError(t, err)
		runStream := n.url + "/api/v1/runs/" + runID + "/stream"
		metaStream := n.url + "/api/v1/stream?metaKey=k&metaValue=v"

		// Token A takes its two places: an SSE stream and an SDK
		// subscription.
		sseA := followSSE(t, runStream, tokA)
		receive(t, sseA.first, "token A's SSE stream")
		sdkA := clientFor(t, n, tokA)
		sdkDone := make(chan []string, 1)
		sdkFirst := make(chan struct{})
		go func() {
			var got []string
			for ev, err := range sdkA.Listener().Stream(ctx, runID) {
				if err != nil {
					break
				}
				if got = append(got, string(ev.Position)); len(got) == 1 {
					close(sdkFirst)
				}
			}
			sdkDone <- got
		}()
		receive(t, sdkFirst, "token A's SDK subscription")
		waitSubscribers(t, n, 2)

		// A third subscription of token A is refused, on every edge.
		for _, url := range []string{runStream, metaStream} {
			resp := openSSE(t, url, tokA)
			require.Equal(t, http.StatusTooManyRequests, resp.StatusCode, url)
			require.Equal(t, "1", resp.Header.Get("Retry-After"))
			status, body := decodeResponse(t, resp)
			requireAPIError(t, status, body, 429, "resource_exhausted", "limit per token (--max-subscribers-per-token)")
		}
		rawA := newRaw(n, tokA)
		requireCode(t, connect.CodeResourceExhausted, rawSubscribeErr(ctx, rawA, runID), "limit per token")
		requireCode(t, connect.CodeResourceExhausted, rawMetaSubscribeErr(ctx, rawA), "limit per token")

		// Other tokens still subscribe, up to the node's limit of 4; the
		// admin token is held to the node's limit only.
		sseB := followSSE(t, runStream, tokB)
		receive(t, sseB.first, "token B's SSE stream")
		sseAdmin := followSSE(t, runStream, admin)
		receive(t, sseAdmin.first, "the admin's SSE stream")
		waitSubscribers(t, n, 4)
		for _, tok := range []string{tokB, admin} {
			resp := openSSE(t, runStream, tok)
			status, body := decodeResponse(t, resp)
			requireAPIError(t, status, body, 429, "resource_exhausted", "already serves 4 subscriptions, its limit (--max-subscribers)")
			requireCode(t, connect.CodeResourceExhausted, rawSubscribeErr(ctx, newRaw(n, tok), runID), "--max-subscribers")
		}
		require.Equal(t, 4, n.srv.Engine().Subscribers(), "refused subscriptions hold no place")

		// The connected subscribers keep streaming to the end of the run
		// and get exactly its log.
		close(release)
		got := map[string][]string{}
		for name, c := range map[string]*sseClient{"A": sseA, "B": sseB, "admin": sseAdmin} {
			r := receive(t, c.done, "SSE stream "+name)
			require.NoError(t, r.err)
			require.True(t, r.ended, "SSE stream %s ended without event: end", name)
			got["SSE "+name] = r.ids
		}
		got["SDK A"] = receive(t, sdkDone, "token A's SDK subscription")

		// Their places are free again.
		waitSubscribers(t, n, 0)
		want := storedPositions(t, n, runID)
		require.Len(t, want, 6, "run.started, step.started, before, after, step.completed, run.completed")
		for name, ids := range got {
			require.Equal(t, want, ids, name)
		}
		again := followSSE(t, runStream, tokA)
		r := receive(t, again.done, "token A's new SSE stream")
		require.True(t, r.ended)
		require.Equal(t, want, r.ids)
	}, func(cfg *server.Config) {
		cfg.Engine.MaxSubscribers = 4
		cfg.Engine.MaxSubscribersPerToken = 2
	})
}

func decodeResponse(t *testing.T, resp *http.Response) (int, map[string]any) {
	t.Helper()
	var body map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	return resp.StatusCode, body
}

func rawSubscribeErr(ctx context.Context, raw rawClients, runID string) error {
	stream, err := raw.runs.Subscribe(ctx, connect.NewRequest(&pb.SubscribeRequest{RunId: runID}))
	if err != nil {
		return err
	}
	defer stream.Close()
	for stream.Receive() {
	}
	return stream.Err()
}

func rawMetaSubscribeErr(ctx context.Context, raw rawClients) error {
	stream, err := raw.runs.SubscribeMetadata(ctx, connect.NewRequest(&pb.SubscribeMetadataRequest{Key: "k", Value: "v"}))
	if err != nil {
		return err
	}
	defer stream.Close()
	if stream.Receive() {
		return nil // admitted: a metadata subscription never ends by itself
	}
	return stream.Err()
}

// Minting tokens faster than the token bucket allows is refused with 429 /
// ResourceExhausted and a Retry-After, on HTTP and RPC alike; a refused
// mint creates nothing, other tokens mint on their own budget, and the
// tokens minted before keep working.
func TestTokenMintRateLimit(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, n *node) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		startWorker(t, n, "w", 2, heldWorkflow(nil))
		admin := n.srv.AdminToken
		runID, err := n.client.Admin().RunWorkflow(ctx, "held", nil)
		require.NoError(t, err)
		api := n.url + "/api/v1"
		mintBrowser := func(tok string) (int, map[string]any, http.Header) {
			req, err := http.NewRequest("POST", api+"/tokens", strings.NewReader(`{"runId": "`+runID+`"}`))
			require.NoError(t, err)
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			status, body := decodeResponse(t, resp)
			return status, body, resp.Header
		}

		// The admin's burst of 3: one API token (RPC), two browser tokens.
		tokB, err := n.client.Admin().CreateToken(ctx, "default", "b")
		require.NoError(t, err)
		var browser []string
		for range 2 {
			status, body, _ := mintBrowser(admin)
			require.Equal(t, http.StatusCreated, status, "%v", body)
			browser = append(browser, body["token"].(string))
		}

		// The fourth is refused, on both edges.
		status, body, hdr := mintBrowser(admin)
		requireAPIError(t, status, body, 429, "resource_exhausted", "mints tokens too fast")
		wait, err := strconv.Atoi(hdr.Get("Retry-After"))
		require.NoError(t, err, "Retry-After %q", hdr.Get("Retry-After"))
		require.Greater(t, wait, 60, "at 1 mint an hour the next one is far off")
		_, err = n.client.Admin().CreateToken(ctx, "refused", "x")
		requireCode(t, connect.CodeResourceExhausted, err, "mints tokens too fast")
		var ce *connect.Error
		require.ErrorAs(t, err, &ce)
		require.NotEmpty(t, ce.Meta().Get("Retry-After"))
		tenants, err := n.srv.Store().CountTenants(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, tenants, "a refused mint created the tenant it named")

		// Token B mints on its own budget; the minted tokens work; the
		// engine serves everything else.
		for range 3 {
			status, body, _ := mintBrowser(tokB)
			require.Equal(t, http.StatusCreated, status, "%v", body)
		}
		status, body, _ = mintBrowser(tokB)
		requireAPIError(t, status, body, 429, "resource_exhausted", "too fast")
		for _, tok := range append(browser, tokB) {
			status, body := call(t, "GET", api+"/runs/"+runID, tok, "")
			require.Equal(t, http.StatusOK, status, "%v", body)
		}
		other, err := n.client.Admin().RunWorkflow(ctx, "held", nil)
		require.NoError(t, err)
		require.NotEqual(t, runID, other)
	}, func(cfg *server.Config) {
		cfg.Engine.TokenMintRate = 1.0 / 3600
		cfg.Engine.TokenMintBurst = 3
	})
}

// The size limits of requests: an RPC message over its procedure's limit and a
// run list over the page limit are refused with a clear error over RPC (the
// HTTP body limit, the stream payload limit over RPC and the HTTP list
// limit are checked in TestHTTPAPI, TestStreamPutIsIdempotent and
// TestPayloadLimit), and the node goes on serving.
func TestRequestSizeLimits(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, n *node) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		raw := newRaw(n, n.srv.AdminToken)
		huge := make([]byte, api.MaxRPCMessageSize+1)
		_, err := raw.runs.TriggerRun(ctx, connect.NewRequest(&pb.TriggerRunRequest{Workflow: "held", Input: huge}))
		requireCode(t, connect.CodeResourceExhausted, err, "larger than configured max")
		// Each procedure has its own limit: a run id of 100 KiB is far
		// more than a GetRun needs.
		_, err = raw.runs.GetRun(ctx, connect.NewRequest(&pb.GetRunRequest{RunId: strings.Repeat("x", 100<<10)}))
		requireCode(t, connect.CodeResourceExhausted, err, "larger than configured max 65536")

		_, err = raw.runs.ListRuns(ctx, connect.NewRequest(&pb.ListRunsRequest{Limit: 1001}))
		requireCode(t, connect.CodeInvalidArgument, err, "limit 1001 out of range 1..1000")
		resp, err := raw.runs.ListRuns(ctx, connect.NewRequest(&pb.ListRunsRequest{Limit: 1000}))
		require.NoError(t, err)
		require.Empty(t, resp.Msg.Runs)

		release := make(chan struct{})
		close(release)
		startWorker(t, n, "w", 1, heldWorkflow(release))
		runID, err := n.client.Admin().RunWorkflow(ctx, "held", nil)
		require.NoError(t, err)
		run, _ := waitRun(t, n, runID)
		require.Equal(t, runnel.RunCompleted, run.Status)
	})
}
