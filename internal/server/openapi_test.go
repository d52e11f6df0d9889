package server_test

import (
	"context"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/api"
	"github.com/runnel-dev/runnel/internal/demo"
	"github.com/runnel-dev/runnel/internal/server"
)

// The description is a valid OpenAPI 3.1 document, served as is without a
// token, with the same CORS headers as the rest of /api/v1.
func TestOpenAPIDocument(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	require.Equal(t, "3.1.0", doc.OpenAPI)
	require.True(t, doc.IsOpenAPI31OrLater())

	n := startNode(t, "sqlite", func(cfg *server.Config) { cfg.CORSOrigins = []string{"http://app.example"} })
	req, err := http.NewRequest("GET", n.url+"/api/v1/openapi.json", nil)
	require.NoError(t, err)
	req.Header.Set("Origin", "http://app.example")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	require.Equal(t, "http://app.example", resp.Header.Get("Access-Control-Allow-Origin"))
	require.Equal(t, api.OpenAPISpec(), body)
}

// Every route internal/api/http.go registers is an operation of the
// description, and every operation is a registered route. The routes are
// read from the source, so a new route without a description fails here.
func TestOpenAPICoversEveryRoute(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	require.Len(t, doc.Servers, 1)
	prefix := doc.Servers[0].URL // "/api/v1"

	// Registered but not operations: the CORS preflight answer and the JSON
	// 404 for unknown paths under the prefix.
	notOperations := []string{"OPTIONS " + prefix + "/", prefix + "/"}
	var registered, skipped []string
	for _, pattern := range muxPatterns(t, "../api/http.go", prefix+"/") {
		if slices.Contains(notOperations, pattern) {
			skipped = append(skipped, pattern)
			continue
		}
		registered = append(registered, pattern)
	}
	require.ElementsMatch(t, notOperations, skipped, "the routes this test skips are no longer registered; update it")

	var described []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			described = append(described, method+" "+prefix+path)
		}
	}
	slices.Sort(registered)
	slices.Sort(described)
	require.Equal(t, registered, described, "routes registered in internal/api/http.go vs operations in openapi.json")
}

// muxPatterns returns the ServeMux patterns under prefix that the file
// registers: the string literals, "METHOD /path" or "/path", passed first
// to any call.
func muxPatterns(t *testing.T, file, prefix string) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	require.NoError(t, err)
	var patterns []string
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) == 0 {
			return true
		}
		lit, ok := call.Args[0].(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			return true
		}
		s, err := strconv.Unquote(lit.Value)
		require.NoError(t, err)
		_, path, hasMethod := strings.Cut(s, " ")
		if !hasMethod {
			path = s
		}
		if strings.HasPrefix(path, prefix) {
			patterns = append(patterns, s)
		}
		return true
	})
	require.NotEmpty(t, patterns, "no routes found in %s: has Mount moved?", file)
	return patterns
}

// openAPIWorkflows complete the demo workflows so that every field and
// every event type of the description shows up: parents, retries, backoff
// and timeouts in definitions, event triggers, a failure without retries
// and a timeout.
func openAPIWorkflows() []*runnel.Workflow {
	return []*runnel.Workflow{
		runnel.NewWorkflow("openapi-dag").OnEvents("openapi:go").
			Step("first", func(ctx runnel.Context) (any, error) { return map[string]int{"n": 1}, nil },
				runnel.Retries(2), runnel.Backoff(10*time.Millisecond)).
			Step("second", func(ctx runnel.Context) (any, error) { return "done", nil },
				runnel.Parents("first"), runnel.Timeout(time.Minute)),
		runnel.NewWorkflow("openapi-fail").Step("boom", func(ctx runnel.Context) (any, error) {
			return nil, runnel.NonRetryable(errors.New("boom on purpose"))
		}),
		runnel.NewWorkflow("openapi-timeout").Step("hang", func(ctx runnel.Context) (any, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		}, runnel.Timeout(100*time.Millisecond)),
		runnel.NewWorkflow("openapi-named").Step("chat", func(ctx runnel.Context) (any, error) {
			if err := ctx.PutStream([]byte("hi"), runnel.ToStream("tokens")); err != nil {
				return nil, err
			}
			return nil, ctx.CloseStream("tokens")
		}),
	}
}

// The limits' 429 answers (too many subscribers on the node, tokens minted
// too fast) match the description, Retry-After included.
func TestOpenAPILimitResponses(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, n *node) {
		c := newSpecCheck(t, loadOpenAPI(t), n.url)
		startWorker(t, n, "openapi-limits", 2, demo.Workflows()...)
		tok := n.srv.AdminToken
		runID := c.do(apiReq{method: "POST", path: "/workflows/demo-slow/runs", token: tok, body: `{"input": {"seconds": 30}, "additionalMetadata": {"k": "v"}}`, status: 201})["runId"].(string)
		defer c.do(apiReq{method: "POST", path: "/runs/" + runID + "/cancel", token: tok, status: 200})

		// The node's one subscription place is taken by a live stream.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.url+"/api/v1/runs/"+runID+"/stream", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)

		c.do(apiReq{method: "GET", path: "/runs/" + runID + "/stream", token: tok, status: 429})
		c.do(apiReq{method: "GET", path: "/stream?metaKey=k&metaValue=v", token: tok, status: 429})
		c.do(apiReq{method: "POST", path: "/tokens", token: tok, body: `{"runId": "` + runID + `"}`, status: 201})
		c.do(apiReq{method: "POST", path: "/tokens", token: tok, body: `{"runId": "` + runID + `"}`, status: 429})
		for _, key := range []string{"GET /runs/{runId}/stream 429", "GET /stream 429", "POST /tokens 429"} {
			require.True(t, c.seen[key], "no %s", key)
		}
	}, func(cfg *server.Config) {
		cfg.Engine.MaxSubscribers = 1
		cfg.Engine.TokenMintRate, cfg.Engine.TokenMintBurst = 0.001, 1
	})
}

// Every endpoint's real requests and responses, successes and errors, match
// the description: bodies, statuses, headers, and each SSE message's data.
// Every documented status but 500 is produced at least once, and every SSE
// message kind is seen.
func TestOpenAPIResponses(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, n *node) {
		// One document per store: kin-openapi may cache compiled schemas in
		// it, and the stores run in parallel.
		doc := loadOpenAPI(t)
		c := newSpecCheck(t, doc, n.url)
		startWorker(t, n, "openapi", 8, append(demo.Workflows(), openAPIWorkflows()...)...)
		tok := n.srv.AdminToken
		const unknownRun = "0193a1b2-0000-7000-8000-000000000000"
		follow := func(runID string) []sseMessage {
			return c.stream(apiReq{method: "GET", path: "/runs/" + runID + "/stream", token: tok}, nil)
		}
		trigger := func(workflow, body string) string {
			return c.do(apiReq{method: "POST", path: "/workflows/" + workflow + "/runs", token: tok, body: body, status: 201})["runId"].(string)
		}

		c.do(apiReq{method: "GET", path: "/openapi.json", status: 200})

		// Runs that end every way, followed to their end.
		textRun := trigger("demo-text", `{"input": {"chunks": 3, "intervalMs": 1}, "additionalMetadata": {"user": "u1"}}`)
		dagRun := trigger("openapi-dag", "") // no body at all
		fileRun := trigger("demo-file", `{"input": {"bytes": 64}}`)
		flakyRun := trigger("demo-flaky", `{"input": {"failAttempts": 1}}`)
		failRun := trigger("openapi-fail", `{}`)
		timeoutRun := trigger("openapi-timeout", `{"additionalMetadata": {}}`)
		namedRun := trigger("openapi-named", `{}`)
		parentRun := trigger("demo-parent", `{"input": {"n": 2, "intervalMs": 1}, "additionalMetadata": {"family": "f1"}}`)
		ends := map[string]string{}
		for _, id := range []string{textRun, dagRun, fileRun, flakyRun, failRun, timeoutRun, parentRun} {
			msgs := follow(id)
			require.Equal(t, "end", msgs[len(msgs)-1].event)
			ends[id] = msgs[len(msgs)-2].event
		}
		require.Equal(t, "run.completed", ends[textRun])
		require.Equal(t, "run.completed", ends[flakyRun])
		require.Equal(t, "run.failed", ends[failRun])
		require.Equal(t, "run.timed_out", ends[timeoutRun])

		// Cancel a running run: wait for its first chunk (a filtered stream).
		slowRun := trigger("demo-slow", `{"input": {"seconds": 30}}`)
		c.stream(apiReq{method: "GET", path: "/runs/" + slowRun + "/stream?types=step.stream&from=start", token: tok},
			func(m []sseMessage) bool { return len(m) == 1 })
		c.do(apiReq{method: "POST", path: "/runs/" + slowRun + "/cancel", token: tok, status: 200})
		follow(slowRun)
		c.do(apiReq{method: "POST", path: "/runs/" + slowRun + "/cancel", token: tok, status: 409})

		// A run that never starts: its workflow's only worker is gone.
		stopIdle := startWorker(t, n, "idle", 1, runnel.NewWorkflow("openapi-idle").Step("never", func(ctx runnel.Context) (any, error) { return nil, nil }))
		stopIdle()
		idleRun := trigger("openapi-idle", `{"input": null}`)
		idle := c.do(apiReq{method: "GET", path: "/runs/" + idleRun, token: tok, status: 200})
		require.Equal(t, "queued", idle["status"])
		require.Nil(t, idle["startedAt"])
		c.do(apiReq{method: "GET", path: "/runs?status=queued", token: tok, status: 200})
		c.do(apiReq{method: "POST", path: "/runs/" + idleRun + "/cancel", token: tok, status: 200})

		// Read every run, and a child run.
		for _, id := range []string{textRun, dagRun, fileRun, flakyRun, failRun, timeoutRun, slowRun, idleRun} {
			c.do(apiReq{method: "GET", path: "/runs/" + id, token: tok, status: 200})
		}
		parent := c.do(apiReq{method: "GET", path: "/runs/" + parentRun, token: tok, status: 200})
		children := parent["children"].([]any)
		require.Len(t, children, 2)
		child := c.do(apiReq{method: "GET", path: "/runs/" + children[0].(map[string]any)["runId"].(string), token: tok, status: 200})
		require.Equal(t, parentRun, child["parentRunId"])

		// Resume a stream by Last-Event-ID and by ?after=.
		all := follow(textRun)
		c.stream(apiReq{method: "GET", path: "/runs/" + textRun + "/stream?after=" + all[1].id, token: tok}, nil)
		c.stream(apiReq{method: "GET", path: "/runs/" + textRun + "/stream?from=now", token: tok, header: []string{"Last-Event-ID", all[2].id}}, nil)

		// Trigger errors.
		c.do(apiReq{method: "POST", path: "/workflows/nope/runs", token: tok, body: `{}`, status: 404})
		c.do(apiReq{method: "POST", path: "/workflows/demo-text/runs", token: tok, body: `{"input": `, status: 400, specRejects: true})
		c.do(apiReq{method: "POST", path: "/workflows/demo-text/runs", token: tok, body: `{"inputs": {}}`, status: 400, specRejects: true})
		c.do(apiReq{method: "POST", path: "/workflows/demo-text/runs", token: tok, body: `{"additionalMetadata": {"k": 1}}`, status: 400, specRejects: true})
		c.do(apiReq{method: "POST", path: "/workflows/demo-text/runs", token: tok, body: bigBody("", "input"), status: 413})
		c.do(apiReq{method: "POST", path: "/workflows/demo-text/runs", body: `{}`, status: 401, specRejects: true})

		// List: filters, paging, errors.
		page := c.do(apiReq{method: "GET", path: "/runs?limit=1", token: tok, status: 200})
		next, ok := page["nextBefore"].(string)
		require.True(t, ok, "a full page has nextBefore: %v", page)
		c.do(apiReq{method: "GET", path: "/runs?limit=1&before=" + next, token: tok, status: 200})
		filtered := c.do(apiReq{method: "GET", path: "/runs?workflow=demo-text&status=completed&meta=user:u1", token: tok, status: 200})
		require.Len(t, filtered["runs"], 1)
		c.do(apiReq{method: "GET", path: "/runs?status=bogus", token: tok, status: 400, specRejects: true})
		c.do(apiReq{method: "GET", path: "/runs?limit=5000", token: tok, status: 400, specRejects: true})
		c.do(apiReq{method: "GET", path: "/runs?meta=nocolon", token: tok, status: 400, specRejects: true})
		// Unknown query parameters are refused by the server; OpenAPI has no
		// way to say so, other than in words.
		c.do(apiReq{method: "GET", path: "/runs?colour=red", token: tok, status: 400})
		c.do(apiReq{method: "GET", path: "/runs", status: 401, specRejects: true})

		// Workflows.
		wfs := c.do(apiReq{method: "GET", path: "/workflows", token: tok, status: 200})
		require.Len(t, wfs["workflows"], len(demo.Workflows())+len(openAPIWorkflows())+1) // and openapi-idle
		c.do(apiReq{method: "GET", path: "/workflows", token: "rnl_nope", status: 401})

		// Browser tokens: minted, used, refused.
		runTok := c.do(apiReq{method: "POST", path: "/tokens", token: tok, body: `{"runId": "` + textRun + `", "ttl": "1m"}`, status: 201})["token"].(string)
		metaTok := c.do(apiReq{method: "POST", path: "/tokens", token: tok, body: `{"metaKey": "family", "metaValue": "f1"}`, status: 201})["token"].(string)
		c.do(apiReq{method: "POST", path: "/tokens", token: tok, body: `{}`, status: 400, specRejects: true})
		c.do(apiReq{method: "POST", path: "/tokens", token: tok, body: `{"runId": "` + textRun + `", "metaKey": "family"}`, status: 400, specRejects: true})
		c.do(apiReq{method: "POST", path: "/tokens", token: tok, body: `{"runId": "` + textRun + `", "ttl": "forever"}`, status: 400, specRejects: true})
		c.do(apiReq{method: "POST", path: "/tokens", token: tok, body: `{"runId": "` + textRun + `", "ttl": "48h"}`, status: 400})
		c.do(apiReq{method: "POST", path: "/tokens", token: tok, body: `{"runId": "` + unknownRun + `"}`, status: 404})
		c.do(apiReq{method: "POST", path: "/tokens", token: runTok, body: `{"runId": "` + textRun + `"}`, status: 403})
		c.do(apiReq{method: "POST", path: "/tokens", token: tok, body: bigBody("", "runId"), status: 413})
		c.do(apiReq{method: "POST", path: "/tokens", body: `{"runId": "` + textRun + `"}`, status: 401, specRejects: true})

		c.do(apiReq{method: "GET", path: "/runs/" + textRun, token: runTok, status: 200})
		c.do(apiReq{method: "GET", path: "/runs/" + dagRun, token: runTok, status: 404})
		c.do(apiReq{method: "GET", path: "/runs/" + parentRun, token: metaTok, status: 200})
		c.do(apiReq{method: "GET", path: "/runs/" + unknownRun, token: tok, status: 404})
		c.do(apiReq{method: "GET", path: "/runs/" + textRun, token: "rnl_nope", status: 401})
		c.do(apiReq{method: "POST", path: "/workflows/demo-text/runs", token: runTok, status: 403})
		c.do(apiReq{method: "GET", path: "/runs", token: runTok, status: 403})
		c.do(apiReq{method: "GET", path: "/workflows", token: runTok, status: 403})

		// Cancel errors.
		c.do(apiReq{method: "POST", path: "/runs/" + textRun + "/cancel", token: runTok, status: 403})
		c.do(apiReq{method: "POST", path: "/runs/" + unknownRun + "/cancel", token: tok, status: 404})
		c.do(apiReq{method: "POST", path: "/runs/" + textRun + "/cancel", status: 401, specRejects: true})

		// Run stream: the token as a query parameter, and errors.
		c.stream(apiReq{method: "GET", path: "/runs/" + textRun + "/stream?token=" + runTok}, nil)
		c.do(apiReq{method: "GET", path: "/runs/" + textRun + "/stream?from=yesterday", token: tok, status: 400, specRejects: true})
		c.do(apiReq{method: "GET", path: "/runs/" + textRun + "/stream?types=step.nope", token: tok, status: 400, specRejects: true})
		// Named streams: one stream's events, from its newest one.
		c.stream(apiReq{method: "GET", path: "/runs/" + namedRun + "/stream?streams=tokens,default&from=latest", token: tok}, nil)
		c.do(apiReq{method: "GET", path: "/runs/" + namedRun + "/stream?streams=bad%20name", token: tok, status: 400, specRejects: true})
		c.do(apiReq{method: "GET", path: "/runs/" + textRun + "/stream?after=garbage", token: tok, status: 400})
		c.do(apiReq{method: "GET", path: "/runs/" + textRun + "/stream", token: tok, header: []string{"Last-Event-ID", "00000000.5"}, status: 400})
		c.do(apiReq{method: "GET", path: "/runs/" + unknownRun + "/stream", token: tok, status: 404})
		c.do(apiReq{method: "GET", path: "/runs/" + dagRun + "/stream", token: runTok, status: 404})
		c.do(apiReq{method: "GET", path: "/runs/" + textRun + "/stream", status: 401, specRejects: true})

		// Metadata stream: the whole family up to the parent's end; a
		// browser token of the pair; errors.
		c.stream(apiReq{method: "GET", path: "/stream?metaKey=family&metaValue=f1", token: tok}, func(m []sseMessage) bool {
			last := m[len(m)-1]
			return last.event == "run.completed" && last.data["runId"] == parentRun
		})
		c.stream(apiReq{method: "GET", path: "/stream?metaKey=family&metaValue=f1&types=run.completed&token=" + metaTok},
			func(m []sseMessage) bool { return len(m) == 3 }) // the parent and its two children
		c.do(apiReq{method: "GET", path: "/stream?metaKey=family&metaValue=f2", token: metaTok, status: 403})
		c.do(apiReq{method: "GET", path: "/stream?metaValue=f1", token: tok, status: 400, specRejects: true})
		c.do(apiReq{method: "GET", path: "/stream?metaKey=family&metaValue=f1", status: 401, specRejects: true})

		// Standalone durable streams: the listing (the streams themselves
		// speak the Durable Streams protocol, outside this description).
		resp, _ := durableDo(t, "PUT", n.url+"/v1/stream/openapi/notes", tok, "", "Content-Type", "text/plain")
		require.Equal(t, 201, resp.StatusCode)
		listed := c.do(apiReq{method: "GET", path: "/streams?prefix=openapi/", token: tok, status: 200})
		require.Len(t, listed["streams"], 1)
		c.do(apiReq{method: "GET", path: "/streams?limit=5", token: tok, status: 400})
		c.do(apiReq{method: "GET", path: "/streams", token: runTok, status: 403})
		c.do(apiReq{method: "GET", path: "/streams", status: 401, specRejects: true})

		// Workers: this test's worker, connected.
		workers := c.do(apiReq{method: "GET", path: "/workers", token: tok, status: 200})
		require.NotEmpty(t, workers["workers"])
		c.do(apiReq{method: "GET", path: "/workers?limit=5", token: tok, status: 400})
		c.do(apiReq{method: "GET", path: "/workers", token: runTok, status: 403})
		c.do(apiReq{method: "GET", path: "/workers", status: 401, specRejects: true})

		// Events.
		pushed := c.do(apiReq{method: "POST", path: "/events", token: tok, body: `{"key": "openapi:go", "payload": {"x": 1}, "additionalMetadata": {"src": "test"}}`, status: 202})
		require.Len(t, pushed["runIds"], 1)
		follow(pushed["runIds"].([]any)[0].(string))
		none := c.do(apiReq{method: "POST", path: "/events", token: tok, body: `{"key": "nobody:listens"}`, status: 202})
		require.Empty(t, none["runIds"])
		c.do(apiReq{method: "POST", path: "/events", token: tok, body: `{"payload": {}}`, status: 400, specRejects: true})
		c.do(apiReq{method: "POST", path: "/events", token: tok, body: `{"key": "bad key"}`, status: 400, specRejects: true})
		c.do(apiReq{method: "POST", path: "/events", token: tok, body: bigBody(`"key": "k", `, "payload"), status: 413})
		c.do(apiReq{method: "POST", path: "/events", token: runTok, body: `{"key": "openapi:go"}`, status: 403})
		c.do(apiReq{method: "POST", path: "/events", body: `{"key": "openapi:go"}`, status: 401, specRejects: true})

		// 500 needs a broken store and 503 a node caught shutting down or
		// cut off from its database; 429 is produced by
		// TestOpenAPILimitResponses. Every other documented response was seen.
		c.requireAllStatusesSeen("500", "503", "429")
		var events []string
		for name := range c.events {
			events = append(events, name)
		}
		require.ElementsMatch(t, sseDataNames(t, doc), events, "SSE message kinds seen vs described")
	})
}
