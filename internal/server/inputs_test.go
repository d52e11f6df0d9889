package server_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/clock/clocktest"
	"github.com/runnel-dev/runnel/internal/dashboard"
	"github.com/runnel-dev/runnel/internal/demo"
	pb "github.com/runnel-dev/runnel/internal/gen/runnel/v1"
	"github.com/runnel-dev/runnel/internal/server"
	"github.com/runnel-dev/runnel/internal/store"
	"github.com/runnel-dev/runnel/internal/store/sqlite"
)

// storeBrowserToken writes a browser token straight into the store, as an
// older engine may have minted it, and returns its secret.
func storeBrowserToken(t *testing.T, n *node, tok store.Token) string {
	t.Helper()
	ctx := context.Background()
	secret := "rnl_test_" + hex.EncodeToString([]byte(t.Name() + tok.MetaKey + tok.RunID))[:20]
	sum := sha256.Sum256([]byte(secret))
	err := n.srv.Store().Write(ctx, func(tx store.Tx) error {
		tenant, err := tx.GetTenantByName(ctx, "default")
		if err != nil {
			return err
		}
		tok.ID, tok.TenantID, tok.Hash, tok.Kind = "tok-"+secret[len(secret)-8:], tenant.ID, hex.EncodeToString(sum[:]), store.TokenBrowser
		tok.Name, tok.CreatedAt, tok.ExpiresAt = "browser", time.Now(), time.Now().Add(time.Hour)
		return tx.CreateToken(ctx, tok)
	})
	require.NoError(t, err)
	return secret
}

// Finding 5: a browser token for metaKey=K, metaValue="" must not read the
// runs that lack K. Minting one is refused; one already stored reads only
// runs that carry K (with the empty value).
func TestBrowserTokenEmptyMetaValue(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, n *node) {
		startWorker(t, n, "demo", 2, demo.Workflows()...)
		api, admin := n.url+"/api/v1", n.srv.AdminToken
		status, body := call(t, "POST", api+"/workflows/demo-text/runs", admin, `{"input": {"chunks": 1, "intervalMs": 1}}`)
		require.Equal(t, 201, status, "%v", body)
		without := body["runId"].(string)
		status, body = call(t, "POST", api+"/workflows/demo-text/runs", admin,
			`{"input": {"chunks": 1, "intervalMs": 1}, "additionalMetadata": {"tenantKey": ""}}`)
		require.Equal(t, 201, status, "%v", body)
		withEmpty := body["runId"].(string)

		status, body = call(t, "POST", api+"/tokens", admin, `{"metaKey": "tenantKey", "metaValue": ""}`)
		requireAPIError(t, status, body, 400, "invalid_argument", "metaValue is empty")
		status, body = call(t, "POST", api+"/tokens", admin, `{"metaKey": "tenantKey"}`)
		requireAPIError(t, status, body, 400, "invalid_argument", "metaValue is empty")

		old := storeBrowserToken(t, n, store.Token{MetaKey: "tenantKey"})
		status, body = call(t, "GET", api+"/runs/"+without, old, "")
		requireAPIError(t, status, body, 404, "not_found", "unknown run")
		status, body = call(t, "GET", api+"/runs/"+without+"/stream", old, "")
		requireAPIError(t, status, body, 404, "not_found", "unknown run")
		status, body = call(t, "GET", api+"/runs/"+withEmpty, old, "")
		require.Equal(t, 200, status, "%v", body)
	})
}

// Finding 10: a query pair Go's parser would drop (';', a bad %-escape) is
// refused with 400 naming it, instead of the filter silently not applying.
// A token in such a pair is not repeated.
func TestQueryStringsAreStrict(t *testing.T) {
	t.Parallel()
	n := startNode(t, "sqlite")
	api, admin := n.url+"/api/v1", n.srv.AdminToken
	for path, want := range map[string]string{
		"/runs?workflow=a;x":          `invalid query "workflow=a;x": ';' does not separate parameters`,
		"/runs?workflow=a&status=%zz": `bad %-escape in the value of "status"`,
		"/runs/0193a1b2-0000-7000-8000-000000000000/stream?types=run.completed;x": `invalid query "types=run.completed;x"`,
		"/stream?metaKey=k&metaValue=v;x":                                         `invalid query "metaValue=v;x"`,
		"/workflows?x%zz=1":                                                       "invalid query parameter name",
	} {
		status, body := call(t, "GET", api+path, admin, "")
		requireAPIError(t, status, body, 400, "invalid_argument", want)
	}
	status, body := call(t, "GET", api+"/runs?token="+admin+";x", "", "")
	requireAPIError(t, status, body, 400, "invalid_argument", `invalid query "token=…"`)
	require.NotContains(t, body["error"].(map[string]any)["message"], admin)
	// An escaped ';' is an ordinary character.
	status, body = call(t, "GET", api+"/runs?workflow=a%3Bx", admin, "")
	require.Equal(t, 200, status, "%v", body)
	require.Empty(t, body["runs"])
}

// Also seen: ?before= must be a run id; a body of null is not an object;
// the Authorization scheme is case-insensitive (RFC 7235); CORS exposes
// Retry-After to pages.
func TestHTTPEdgeRefusesMalformedInput(t *testing.T) {
	t.Parallel()
	n := startNode(t, "sqlite", func(cfg *server.Config) { cfg.CORSOrigins = []string{"http://app.example"} })
	api, admin := n.url+"/api/v1", n.srv.AdminToken

	status, body := call(t, "GET", api+"/runs?before=garbage", admin, "")
	requireAPIError(t, status, body, 400, "invalid_argument", `invalid before "garbage": want a run id`)
	status, body = call(t, "GET", api+"/runs?before=0193a1b2-0000-7000-8000-000000000000", admin, "")
	require.Equal(t, 200, status, "%v", body)

	for _, path := range []string{"/workflows/demo-text/runs", "/tokens", "/events"} {
		status, body = call(t, "POST", api+path, admin, " null ")
		requireAPIError(t, status, body, 400, "invalid_argument", "request body is null: want a JSON object")
	}

	for _, scheme := range []string{"bearer", "BEARER", "Bearer", "bEaReR"} {
		status, body = call(t, "GET", api+"/workflows", "", "", "Authorization", scheme+" "+admin)
		require.Equal(t, 200, status, "%s: %v", scheme, body)
	}
	req, err := http.NewRequest("POST", n.url+"/runnel.v1.RunService/ListWorkflows", strings.NewReader("{}"))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "bearer "+admin)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode, "RPC with a lower-case scheme")
	status, _ = call(t, "GET", api+"/workflows", "", "", "Authorization", "Basic "+admin)
	require.Equal(t, 401, status)

	req, err = http.NewRequest("GET", api+"/workflows", nil)
	require.NoError(t, err)
	req.Header.Set("Origin", "http://app.example")
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Contains(t, resp.Header.Get("Access-Control-Expose-Headers"), "Retry-After")
}

// Also seen: a position beyond the log's newest one is refused (400) on run
// and metadata streams, over HTTP and RPC, instead of silently skipping
// every event until the log gets there.
func TestResumeBeyondLogHeadIsRefused(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, n *node) {
		startWorker(t, n, "demo", 2, demo.Workflows()...)
		ctx := context.Background()
		runID, err := n.client.Admin().RunWorkflow(ctx, "demo-text", map[string]int{"chunks": 2, "intervalMs": 1})
		require.NoError(t, err)
		_, events := waitRun(t, n, runID)
		last := string(events[len(events)-1].Position)
		tag, _, _ := strings.Cut(last, ".")
		future := tag + ".999999999999"
		api, admin := n.url+"/api/v1", n.srv.AdminToken

		for _, path := range []string{"/runs/" + runID + "/stream?after=" + future, "/stream?metaKey=k&metaValue=v&after=" + future} {
			status, body := call(t, "GET", api+path, admin, "")
			requireAPIError(t, status, body, 400, "invalid_argument", "beyond the newest event of the log")
		}
		for ev, err := range n.client.Listener().Stream(ctx, runID, runnel.After(runnel.Position(future))) {
			require.Error(t, err, "got %v", ev)
			require.Contains(t, err.Error(), "beyond the newest event")
			break
		}
		// The newest position itself resumes normally: nothing after it.
		resp := openSSE(t, api+"/runs/"+runID+"/stream?after="+last, admin)
		require.Equal(t, 200, resp.StatusCode)
		frames, _ := readSSE(t, resp.Body)
		require.Equal(t, "end", frames[len(frames)-1].event)
	})
}

// Also seen: a mint refused after it was counted (an unknown run) does not
// use up the minting token's budget; only minted tokens count.
func TestRefusedMintsAreNotCounted(t *testing.T) {
	t.Parallel()
	n := startNode(t, "sqlite", func(cfg *server.Config) {
		cfg.Engine.TokenMintRate = 1.0 / 3600
		cfg.Engine.TokenMintBurst = 2
	})
	startWorker(t, n, "demo", 2, demo.Workflows()...)
	api, admin := n.url+"/api/v1", n.srv.AdminToken
	runID, err := n.client.Admin().RunWorkflow(context.Background(), "demo-text", map[string]int{"chunks": 1})
	require.NoError(t, err)
	for range 5 {
		status, body := call(t, "POST", api+"/tokens", admin, `{"runId": "0193a1b2-0000-7000-8000-000000000000"}`)
		requireAPIError(t, status, body, 404, "not_found", "unknown run")
	}
	for range 2 {
		status, body := call(t, "POST", api+"/tokens", admin, `{"runId": "`+runID+`"}`)
		require.Equal(t, 201, status, "%v", body)
	}
	status, body := call(t, "POST", api+"/tokens", admin, `{"runId": "`+runID+`"}`)
	requireAPIError(t, status, body, 429, "resource_exhausted", "too fast")
}

// Findings 8 and 9: a NUL in any string field (metadata, filters, ids,
// token scopes, names), and text that is not UTF-8 inside a JSON input or
// payload, get 400 naming the field on both stores (PostgreSQL cannot store
// NUL; SQLite would have), before any stream starts, and nothing is stored.
func TestHostileTextIsRefused(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, n *node) {
		startWorker(t, n, "demo", 2, append(demo.Workflows(), hostileTextWorkflows()...)...)
		ctx := context.Background()
		api, admin := n.url+"/api/v1", n.srv.AdminToken
		before, err := n.client.Admin().ListRuns(ctx, runnel.ListRunsOptions{})
		require.NoError(t, err)

		for _, tc := range []struct{ method, path, body, want string }{
			{"POST", "/workflows/demo-text/runs", `{"additionalMetadata": {"k\u0000": "v"}}`, "additional metadata key"},
			{"POST", "/workflows/demo-text/runs", `{"additionalMetadata": {"k": "v\u0000"}}`, "additional metadata value"},
			{"POST", "/workflows/demo%00text/runs", `{}`, "workflow name contains a NUL"},
			{"POST", "/workflows/demo-text/runs", "{\"input\": {\"a\": \"\xff\xfe\"}}", "request body is not valid UTF-8"},
			{"POST", "/events", "{\"key\": \"user:create\", \"payload\": {\"a\": \"\xc3\"}}", "request body is not valid UTF-8"},
			{"POST", "/events", `{"key": "user:create", "additionalMetadata": {"k": "\u0000"}}`, "additional metadata value"},
			{"GET", "/runs?workflow=a%00", "", "workflow filter contains a NUL"},
			{"GET", "/runs?meta=k%00:v", "", "metadata filter key contains a NUL"},
			{"GET", "/runs?meta=k:v%00", "", "metadata filter value contains a NUL"},
			{"GET", "/runs?before=%00", "", "before contains a NUL"},
			{"GET", "/runs/%00", "", "run id contains a NUL"},
			{"POST", "/runs/%00/cancel", "", "run id contains a NUL"},
			{"GET", "/runs/%00/stream", "", "run id contains a NUL"},
			{"GET", "/stream?metaKey=k%00&metaValue=v", "", "metadata key contains a NUL"},
			{"GET", "/stream?metaKey=k&metaValue=%00", "", "metadata value contains a NUL"},
			{"POST", "/tokens", `{"runId": "\u0000"}`, "runId contains a NUL"},
			{"POST", "/tokens", `{"metaKey": "k\u0000", "metaValue": "v"}`, "metaKey contains a NUL"},
			{"POST", "/tokens", `{"metaKey": "k", "metaValue": "v\u0000"}`, "metaValue contains a NUL"},
		} {
			status, body := call(t, tc.method, api+tc.path, admin, tc.body)
			requireAPIError(t, status, body, 400, "invalid_argument", tc.want)
		}

		// Over RPC: every string of every request, worker calls included.
		raw := newRaw(n, admin)
		_, err = n.client.Admin().RunWorkflow(ctx, "demo-text", nil, runnel.WithAdditionalMetadata(map[string]string{"k": "\x00"}))
		requireCode(t, connect.CodeInvalidArgument, err, "contains a NUL")
		_, err = n.client.Admin().CreateToken(ctx, "default", "label\x00")
		requireCode(t, connect.CodeInvalidArgument, err, "contains a NUL")
		_, err = raw.worker.RegisterWorker(ctx, connect.NewRequest(&pb.RegisterWorkerRequest{Name: "w\x00", Slots: 1}))
		requireCode(t, connect.CodeInvalidArgument, err, "field name contains a NUL")
		_, err = raw.worker.Heartbeat(ctx, connect.NewRequest(&pb.HeartbeatRequest{WorkerId: "\x00"}))
		requireCode(t, connect.CodeInvalidArgument, err, "field workerId contains a NUL")
		_, err = raw.worker.CompleteStep(ctx, connect.NewRequest(&pb.CompleteStepRequest{StepRunId: "x", Attempt: 1, Output: []byte("\"\xff\"")}))
		requireCode(t, connect.CodeInvalidArgument, err, "step output is not valid UTF-8")
		sub, err := raw.runs.SubscribeMetadata(ctx, connect.NewRequest(&pb.SubscribeMetadataRequest{Key: "k\x00", Value: "v"}))
		require.NoError(t, err)
		require.False(t, sub.Receive())
		requireCode(t, connect.CodeInvalidArgument, sub.Err(), "field key contains a NUL")

		after, err := n.client.Admin().ListRuns(ctx, runnel.ListRunsOptions{})
		require.NoError(t, err)
		require.Len(t, after, len(before), "a refused request stored a run")

		// A step whose error holds a NUL still fails cleanly: the SDK sends
		// a storable message.
		runID, err := n.client.Admin().RunWorkflow(ctx, "nul-error", nil)
		require.NoError(t, err)
		run, _ := waitRun(t, n, runID)
		require.Equal(t, runnel.RunFailed, run.Status)
		require.Contains(t, run.Error, "bad\uFFFDbyte")
	})
}

// hostileTextWorkflows are a workflow that listens to user:create (for the events
// endpoint) and one whose step fails with a NUL in its error.
func hostileTextWorkflows() []*runnel.Workflow {
	noop := func(ctx runnel.Context) (any, error) { return nil, nil }
	return []*runnel.Workflow{
		runnel.NewWorkflow("on-user").OnEvents("user:create").Step("s", noop),
		runnel.NewWorkflow("nul-error").Step("s", func(ctx runnel.Context) (any, error) {
			return nil, runnel.NonRetryable(errors.New("bad\x00byte"))
		}),
	}
}

// Finding 11: every route that serves the dashboard (/, /ui/, its files)
// carries the same policy, with frame-ancestors 'none'; every response of
// the node (API, errors, SSE, RPC, runnel.js, metrics, health) has nosniff
// and refuses framing.
func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	n := startNode(t, "sqlite")
	startWorker(t, n, "demo", 2, demo.Workflows()...)
	runID, err := n.client.Admin().RunWorkflow(context.Background(), "demo-text", map[string]int{"chunks": 1})
	require.NoError(t, err)
	waitRun(t, n, runID)
	get := func(path, token string, header ...string) *http.Response {
		t.Helper()
		req, err := http.NewRequest("GET", n.url+path, nil)
		require.NoError(t, err)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	for _, path := range []string{"/", "/ui/", "/ui/app.js", "/ui/style.css"} {
		resp := get(path, "")
		require.Equal(t, 200, resp.StatusCode, path)
		require.Equal(t, dashboard.ContentSecurityPolicy, resp.Header.Get("Content-Security-Policy"), path)
		require.Contains(t, resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'", path)
		require.Equal(t, "DENY", resp.Header.Get("X-Frame-Options"), path)
		require.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"), path)
	}
	admin := n.srv.AdminToken
	for path, status := range map[string]int{
		"/api/v1/runs": 200, "/api/v1/runs/" + runID: 200, "/api/v1/runs/" + runID + "/stream": 200,
		"/api/v1/openapi.json": 200, "/api/v1/nope": 404, "/sdk/runnel.js": 200, "/healthz": 200,
		"/readyz": 200, "/metrics": 200, "/nope": 404,
	} {
		resp := get(path, admin)
		require.Equal(t, status, resp.StatusCode, path)
		require.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"), path)
		require.Equal(t, "DENY", resp.Header.Get("X-Frame-Options"), path)
		require.Contains(t, resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'", path)
	}
	resp := get("/api/v1/runs", "")
	require.Equal(t, 401, resp.StatusCode)
	require.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
	req, err := http.NewRequest("POST", n.url+"/runnel.v1.RunService/ListWorkflows", strings.NewReader("{}"))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+admin)
	rpc, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	rpc.Body.Close()
	require.Equal(t, 200, rpc.StatusCode)
	require.Equal(t, "nosniff", rpc.Header.Get("X-Content-Type-Options"))
}

// Finding 12: the SQLite database, its -wal and -shm files, admin.token
// and backups are 0600 and the data directory 0700, also when they existed
// with wider modes (tightened with a logged notice).
func TestDataFilesArePrivate(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	require.NoError(t, os.Mkdir(dir, 0o755))
	require.NoError(t, os.Chmod(dir, 0o755)) // whatever the umask
	var logs lockedBuffer
	start := func() *server.Server {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		srv, err := server.Start(context.Background(), server.Config{
			DataDir: dir, Listener: ln, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		})
		require.NoError(t, err)
		return srv
	}
	requireModes := func() {
		t.Helper()
		for _, name := range []string{"runnel.db", "runnel.db-wal", "runnel.db-shm", "admin.token"} {
			fi, err := os.Stat(filepath.Join(dir, name))
			require.NoError(t, err, name)
			require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), name)
		}
		fi, err := os.Stat(dir)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o700), fi.Mode().Perm(), "data directory")
	}
	stop := func(srv *server.Server) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, srv.Stop(ctx))
	}

	srv := start()
	requireModes()
	require.Contains(t, logs.String(), "restricted permissions")
	require.Contains(t, logs.String(), "was=0755 now=0700")
	stop(srv)

	// An older engine's files, or files copied in by hand.
	for _, name := range []string{"runnel.db", "admin.token"} {
		require.NoError(t, os.Chmod(filepath.Join(dir, name), 0o644))
	}
	require.NoError(t, os.Chmod(dir, 0o755))
	srv = start()
	requireModes()
	require.Contains(t, logs.String(), "was=0644 now=0600")

	out := filepath.Join(t.TempDir(), "copy.db")
	require.NoError(t, sqlite.Backup(context.Background(), filepath.Join(dir, "runnel.db"), out))
	fi, err := os.Stat(out)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "backup")
	stop(srv)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Also seen: API tokens may expire, and an admin can list and revoke
// tokens. A revoked token is refused at once (its cached entry included),
// its live SSE and RPC subscriptions end, and the browser tokens it minted
// go with it; an expired one is refused at once too.
func TestTokenExpiryAndRevocation(t *testing.T) {
	t.Parallel()
	for _, kind := range stores {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			var offset atomic.Int64 // the engine's clock, moved forward to expire tokens
			n := startNode(t, kind, func(cfg *server.Config) {
				cfg.Engine.Clock = clocktest.Offset(&offset)
			})
			tokenExpiryAndRevocation(t, n, &offset)
		})
	}
}

func tokenExpiryAndRevocation(t *testing.T, n *node, offset *atomic.Int64) {
	ctx := context.Background()
	startWorker(t, n, "demo", 2, demo.Workflows()...)
	api, admin := n.url+"/api/v1", n.srv.AdminToken
	runID, err := n.client.Admin().RunWorkflow(ctx, "demo-slow", map[string]int{"seconds": 60},
		runnel.WithAdditionalMetadata(map[string]string{"k": "v"}))
	require.NoError(t, err)
	t.Cleanup(func() { _ = n.client.Admin().CancelRun(context.Background(), runID) })

	// Expiry: valid until its lifetime has passed, then refused.
	expiring, err := n.client.Admin().MintToken(ctx, runnel.TokenOptions{Name: "ci", ExpiresIn: time.Hour})
	require.NoError(t, err)
	require.WithinDuration(t, time.Now().Add(time.Hour), expiring.ExpiresAt, time.Minute)
	status, body := call(t, "GET", api+"/runs/"+runID, expiring.Secret, "")
	require.Equal(t, 200, status, "%v", body)
	offset.Add(int64(2 * time.Hour))
	status, body = call(t, "GET", api+"/runs/"+runID, expiring.Secret, "")
	requireAPIError(t, status, body, 401, "unauthenticated", "token expired")
	offset.Add(-int64(2 * time.Hour))

	// A backend's API token, a browser token it minted, and both in use.
	backend, err := n.client.Admin().MintToken(ctx, runnel.TokenOptions{Name: "backend"})
	require.NoError(t, err)
	require.True(t, backend.ExpiresAt.IsZero())
	status, body = call(t, "POST", api+"/tokens", backend.Secret, `{"metaKey": "k", "metaValue": "v"}`)
	require.Equal(t, 201, status, "%v", body)
	browser := body["token"].(string)
	sse := followSSE(t, api+"/stream?metaKey=k&metaValue=v", browser)
	rpcSub, err := newRaw(n, backend.Secret).runs.Subscribe(ctx, connect.NewRequest(&pb.SubscribeRequest{RunId: runID}))
	require.NoError(t, err)
	require.True(t, rpcSub.Receive(), "%v", rpcSub.Err())
	waitSubscribers(t, n, 2)

	// Only admin tokens manage tokens.
	_, err = clientFor(t, n, backend.Secret).Admin().ListTokens(ctx)
	requireCode(t, connect.CodePermissionDenied, err, "only an admin token")
	_, err = clientFor(t, n, backend.Secret).Admin().RevokeToken(ctx, expiring.ID)
	requireCode(t, connect.CodePermissionDenied, err, "only an admin token")

	ids, err := n.client.Admin().RevokeToken(ctx, backend.ID)
	require.NoError(t, err)
	require.Len(t, ids, 2, "the API token and the browser token it minted")
	for _, tok := range []string{backend.Secret, browser} {
		status, body = call(t, "GET", api+"/runs/"+runID, tok, "")
		requireAPIError(t, status, body, 401, "unauthenticated", "token revoked")
	}
	select {
	case <-sse.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the revoked browser token's SSE stream is still open")
	}
	for rpcSub.Receive() {
	}
	requireCode(t, connect.CodeUnauthenticated, rpcSub.Err(), "token revoked")
	waitSubscribers(t, n, 0)

	// Listing shows every API and admin token, never a secret.
	toks, err := n.client.Admin().ListTokens(ctx)
	require.NoError(t, err)
	byID := map[string]runnel.TokenInfo{}
	for _, tok := range toks {
		byID[tok.ID] = tok
		require.NotEqual(t, "browser", tok.Kind)
	}
	require.Equal(t, "admin", toks[0].Kind)
	require.Equal(t, "default", byID[backend.ID].Tenant)
	require.False(t, byID[backend.ID].RevokedAt.IsZero())
	require.True(t, byID[expiring.ID].RevokedAt.IsZero())
	require.WithinDuration(t, expiring.ExpiresAt, byID[expiring.ID].ExpiresAt, time.Millisecond)

	// Revoking again, an unknown id, or the caller itself.
	ids, err = n.client.Admin().RevokeToken(ctx, backend.ID)
	require.NoError(t, err)
	require.Empty(t, ids)
	_, err = n.client.Admin().RevokeToken(ctx, "0193a1b2-0000-7000-8000-000000000000")
	requireCode(t, connect.CodeNotFound, err, "unknown token")
	_, err = n.client.Admin().RevokeToken(ctx, toks[0].ID)
	requireCode(t, connect.CodeFailedPrecondition, err, "cannot revoke itself")

	// A second admin token can revoke the first.
	second, err := n.client.Admin().MintToken(ctx, runnel.TokenOptions{Name: "admin-2", Admin: true})
	require.NoError(t, err)
	_, err = clientFor(t, n, second.Secret).Admin().RevokeToken(ctx, toks[0].ID)
	require.NoError(t, err)
	status, body = call(t, "GET", api+"/runs", admin, "")
	requireAPIError(t, status, body, 401, "unauthenticated", "token revoked")
}

// On PostgreSQL, a token revoked through one node is refused by another
// that had it cached, at once (a notification), not after the cache's
// lifetime.
func TestRevocationReachesEveryNode(t *testing.T) {
	t.Parallel()
	a := startNode(t, "postgres")
	b := startNode(t, "postgres", func(cfg *server.Config) { cfg.DatabaseURL = a.srv.Config().DatabaseURL })
	ctx := context.Background()
	tok, err := a.client.Admin().MintToken(ctx, runnel.TokenOptions{Name: "leaked"})
	require.NoError(t, err)
	status, body := call(t, "GET", b.url+"/api/v1/runs", tok.Secret, "")
	require.Equal(t, 200, status, "%v", body) // cached on b now
	_, err = a.client.Admin().RevokeToken(ctx, tok.ID)
	require.NoError(t, err)
	// The notification arrives within milliseconds; the cache would keep
	// the token for 10 s.
	require.Eventually(t, func() bool {
		status, _ := call(t, "GET", b.url+"/api/v1/runs", tok.Secret, "")
		return status == 401
	}, 5*time.Second, 10*time.Millisecond)
}
