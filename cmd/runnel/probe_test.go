package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/testdb"
)

// The probe suite replays, against a real engine process on each store, what
// an outside security probe tried: no or foreign tokens, browser tokens used
// beyond their scope, raw Connect requests, hostile bytes in every field,
// cross-origin pages, oversized bodies. Each finding the probe made once is a
// case here, next to the checks that held, so that none can come back.

// probeTarget is an engine process with two tenants, alpha and beta, and a
// worker of alpha's running a long demo run.
type probeTarget struct {
	url        string
	dataDir    string
	engine     *proc
	admin      string // admin token (default tenant)
	alpha      string // API token of tenant alpha
	beta       string // API token of tenant beta
	alphaRun   string // a running run of alpha's (demo-slow)
	alphaBrows string // browser token for alphaRun
}

func startProbeTarget(t *testing.T, dbURL string) *probeTarget {
	t.Helper()
	p := &probeTarget{dataDir: t.TempDir()}
	addr := freeAddr(t)
	p.url = "http://" + addr
	args := []string{"server", "--addr", addr, "--data-dir", p.dataDir}
	if dbURL != "" {
		args = append(args, "--db", dbURL)
	}
	p.engine = start(t, nil, args...)
	p.engine.waitFor(t, "engine listening")
	admin, err := os.ReadFile(filepath.Join(p.dataDir, "admin.token"))
	require.NoError(t, err)
	p.admin = strings.TrimSpace(string(admin))

	p.alpha = p.mintAPIToken(t, "alpha")
	p.beta = p.mintAPIToken(t, "beta")
	worker := start(t, []string{"RUNNEL_HOST=" + p.url, "RUNNEL_TOKEN=" + p.alpha}, "worker", "--slots", "4", "--name", "alpha-worker")
	worker.waitFor(t, "worker registered")

	status, body := p.do(t, "POST", "/api/v1/workflows/demo-slow/runs", p.alpha,
		`{"input": {"seconds": 600}, "additionalMetadata": {"session": "s1"}}`)
	require.Equal(t, http.StatusCreated, status, "%s", body)
	p.alphaRun = jsonField(t, body, "runId")
	status, body = p.do(t, "POST", "/api/v1/tokens", p.alpha, fmt.Sprintf(`{"runId": %q}`, p.alphaRun))
	require.Equal(t, http.StatusCreated, status, "%s", body)
	p.alphaBrows = jsonField(t, body, "token")
	return p
}

// mintAPIToken creates an API token for tenant (and the tenant) with the
// admin token, through the RPC the CLI uses.
func (p *probeTarget) mintAPIToken(t *testing.T, tenant string) string {
	t.Helper()
	status, body := p.rpc(t, "RunService/CreateToken", p.admin, fmt.Sprintf(`{"tenant": %q, "name": "probe"}`, tenant))
	require.Equal(t, http.StatusOK, status, "%s", body)
	return jsonField(t, body, "token")
}

// do sends one HTTP request with an optional bearer token and body, and
// returns the status and the body (the first MiB).
func (p *probeTarget) do(t *testing.T, method, path, token, body string, headers ...string) (int, []byte) {
	t.Helper()
	resp := p.send(t, method, path, token, body, headers...)
	defer resp.Body.Close()
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		// A stream that opened: its status is the answer; reading it would
		// wait for the run (or, for a metadata stream, forever).
		return resp.StatusCode, nil
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b
}

func (p *probeTarget) send(t *testing.T, method, path, token, body string, headers ...string) *http.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, p.url+path, r)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	return resp
}

// rpc calls a Connect unary method with the JSON codec, as a raw client would.
func (p *probeTarget) rpc(t *testing.T, method, token, body string) (int, []byte) {
	t.Helper()
	return p.do(t, "POST", "/runnel.v1."+method, token, body)
}

func jsonField(t *testing.T, body []byte, field string) string {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(body, &m), "%s", body)
	s, ok := m[field].(string)
	require.True(t, ok, "no %q in %s", field, body)
	return s
}

// probeStores runs fn on a fresh engine on SQLite and on PostgreSQL.
func probeStores(t *testing.T, fn func(t *testing.T, p *probeTarget)) {
	t.Helper()
	for _, store := range []string{"sqlite", "postgres"} {
		t.Run(store, func(t *testing.T) {
			t.Parallel()
			dbURL := ""
			if store == "postgres" {
				dbURL = testdb.PostgresURL(t)
			}
			fn(t, startProbeTarget(t, dbURL))
		})
	}
}

func TestProbe(t *testing.T) {
	t.Parallel()
	probeStores(t, func(t *testing.T, p *probeTarget) {
		// The subtests share the target and change nothing the others read.
		t.Run("Auth", p.auth)
		t.Run("CrossTenant", p.crossTenant)
		t.Run("BrowserTokenScope", p.browserTokenScope)
		t.Run("CORS", p.cors)
		t.Run("Limits", p.limits)
		t.Run("HostileBytes", p.hostileBytes)
		t.Run("StillServes", p.stillServes)
	})
}

// Every endpoint and RPC refuses a missing, malformed or unknown token.
func (p *probeTarget) auth(t *testing.T) {
	routes := []struct{ method, path, body string }{
		{"POST", "/api/v1/workflows/demo-text/runs", `{}`},
		{"GET", "/api/v1/workflows", ""},
		{"GET", "/api/v1/runs", ""},
		{"GET", "/api/v1/runs/" + p.alphaRun, ""},
		{"POST", "/api/v1/runs/" + p.alphaRun + "/cancel", ""},
		{"GET", "/api/v1/runs/" + p.alphaRun + "/stream", ""},
		{"POST", "/api/v1/tokens", `{"runId": "` + p.alphaRun + `"}`},
		{"POST", "/api/v1/events", `{"key": "k"}`},
		{"GET", "/api/v1/stream?metaKey=session&metaValue=s1", ""},
	}
	for _, r := range append(routes, rpcRoutes(p)...) {
		for _, tok := range []string{"", "rnl_not-a-token", "garbage", p.alpha + "x"} {
			status, body := p.do(t, r.method, r.path, tok, r.body)
			require.Equal(t, http.StatusUnauthorized, status, "%s %s with token %q: %s", r.method, r.path, tok, body)
		}
		status, body := p.do(t, r.method, r.path, "", r.body, "Authorization", "Basic "+p.alpha)
		require.Equal(t, http.StatusUnauthorized, status, "%s %s with Basic auth: %s", r.method, r.path, body)
	}
}

func rpcRoutes(p *probeTarget) []struct{ method, path, body string } {
	var out []struct{ method, path, body string }
	for _, m := range []string{
		"RunService/TriggerRun", "RunService/GetRun", "RunService/ListRuns", "RunService/CancelRun",
		"RunService/ListWorkflows", "RunService/CreateToken", "RunService/PushEvent",
		"WorkerService/RegisterWorker", "WorkerService/Heartbeat", "WorkerService/PutStream",
		"WorkerService/CompleteStep", "WorkerService/FailStep", "WorkerService/SpawnRun",
	} {
		out = append(out, struct{ method, path, body string }{"POST", "/runnel.v1." + m, `{}`})
	}
	return out
}

// Another tenant's token finds nothing of alpha's: every read, write and
// stream of alpha's run answers 404, and alpha's runs are not listed.
func (p *probeTarget) crossTenant(t *testing.T) {
	for _, r := range []struct{ method, path, body string }{
		{"GET", "/api/v1/runs/" + p.alphaRun, ""},
		{"POST", "/api/v1/runs/" + p.alphaRun + "/cancel", ""},
		{"GET", "/api/v1/runs/" + p.alphaRun + "/stream", ""},
		{"POST", "/api/v1/tokens", `{"runId": "` + p.alphaRun + `"}`},
	} {
		status, body := p.do(t, r.method, r.path, p.beta, r.body)
		require.Equal(t, http.StatusNotFound, status, "%s %s as beta: %s", r.method, r.path, body)
	}
	for _, m := range []string{"RunService/GetRun", "RunService/CancelRun"} {
		status, body := p.rpc(t, m, p.beta, fmt.Sprintf(`{"runId": %q}`, p.alphaRun))
		require.Equal(t, http.StatusNotFound, status, "%s as beta: %s", m, body)
	}
	status, body := p.do(t, "GET", "/api/v1/runs", p.beta, "")
	require.Equal(t, http.StatusOK, status, "%s", body)
	require.NotContains(t, string(body), p.alphaRun)
	status, body = p.do(t, "GET", "/api/v1/workflows", p.beta, "")
	require.Equal(t, http.StatusOK, status, "%s", body)
	require.NotContains(t, string(body), "demo-slow", "beta sees alpha's workflows")

	// A metadata stream of beta's with alpha's pair sees none of alpha's
	// events: it opens (metadata streams are per tenant) and carries only
	// heartbeats until closed.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", p.url+"/api/v1/stream?metaKey=session&metaValue=s1&token="+p.beta, nil)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	got, _ := io.ReadAll(resp.Body) // ends at the context's deadline
	require.NotContains(t, string(got), p.alphaRun, "beta's metadata stream carries alpha's run")
}

// A browser token reads its one run and nothing else, and writes nothing.
func (p *probeTarget) browserTokenScope(t *testing.T) {
	b := p.alphaBrows
	status, body := p.do(t, "GET", "/api/v1/runs/"+p.alphaRun, b, "")
	require.Equal(t, http.StatusOK, status, "%s", body)

	status, body = p.do(t, "POST", "/api/v1/workflows/demo-text/runs", p.alpha, `{}`)
	require.Equal(t, http.StatusCreated, status, "%s", body)
	other := jsonField(t, body, "runId")
	for _, r := range []struct {
		method, path, body string
		want               int
	}{
		{"GET", "/api/v1/runs/" + other, "", http.StatusNotFound},
		{"GET", "/api/v1/runs/" + other + "/stream", "", http.StatusNotFound},
		{"POST", "/api/v1/workflows/demo-text/runs", `{}`, http.StatusForbidden},
		{"POST", "/api/v1/runs/" + p.alphaRun + "/cancel", "", http.StatusForbidden},
		{"POST", "/api/v1/tokens", `{"runId": "` + p.alphaRun + `"}`, http.StatusForbidden},
		{"POST", "/api/v1/events", `{"key": "k"}`, http.StatusForbidden},
		{"GET", "/api/v1/stream?metaKey=session&metaValue=s1", "", http.StatusForbidden},
		{"POST", "/runnel.v1.RunService/TriggerRun", `{"workflow": "demo-text"}`, http.StatusForbidden},
		{"POST", "/runnel.v1.RunService/CreateToken", `{"tenant": "alpha"}`, http.StatusForbidden},
		{"POST", "/runnel.v1.RunService/GetRun", `{"runId": "` + other + `"}`, http.StatusNotFound},
		{"POST", "/runnel.v1.WorkerService/RegisterWorker", `{"name": "w", "slots": 1}`, http.StatusForbidden},
	} {
		status, body := p.do(t, r.method, r.path, b, r.body)
		require.Equal(t, r.want, status, "%s %s with a browser token: %s", r.method, r.path, body)
	}
	status, body = p.do(t, "GET", "/api/v1/runs", b, "")
	require.NotContains(t, string(body), other, "listing with a browser token (%d) shows a run outside its scope", status)
}

// Cross-origin pages get nothing unless their origin is configured.
func (p *probeTarget) cors(t *testing.T) {
	resp := p.send(t, "GET", "/api/v1/runs/"+p.alphaRun, p.alpha, "", "Origin", "https://evil.example")
	resp.Body.Close()
	require.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))
	resp = p.send(t, "OPTIONS", "/api/v1/runs/"+p.alphaRun, "", "",
		"Origin", "https://evil.example", "Access-Control-Request-Method", "GET",
		"Access-Control-Request-Headers", "authorization")
	resp.Body.Close()
	require.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
}

// Oversized bodies and fields are refused with a status naming the problem.
func (p *probeTarget) limits(t *testing.T) {
	big := `{"input": "` + strings.Repeat("a", 5<<20) + `"}`
	status, body := p.do(t, "POST", "/api/v1/workflows/demo-text/runs", p.alpha, big)
	require.Equal(t, http.StatusRequestEntityTooLarge, status, "%.300s", body)
	status, body = p.do(t, "POST", "/api/v1/workflows/"+strings.Repeat("w", 300)+"/runs", p.alpha, `{}`)
	require.Equal(t, http.StatusNotFound, status, "%.300s", body)
	meta := map[string]string{}
	for i := range 200 {
		meta[fmt.Sprintf("k%d", i)] = strings.Repeat("v", 2000)
	}
	mb, _ := json.Marshal(map[string]any{"additionalMetadata": meta})
	status, body = p.do(t, "POST", "/api/v1/workflows/demo-text/runs", p.alpha, string(mb))
	require.Equal(t, http.StatusBadRequest, status, "%.300s", body)
}

// Hostile bytes in every field of the HTTP API and the RPC get a 4xx, never
// a 5xx, and the engine keeps serving.
func (p *probeTarget) hostileBytes(t *testing.T) {
	hostile := []string{"\x00", "a\x00b", "\xff\xfe", "\u202e", "../../etc/passwd", "%00", "'; DROP TABLE runs; --", strings.Repeat("é", 5000)}
	for _, h := range hostile {
		js, _ := json.Marshal(h)
		q := url.QueryEscape(h)
		p.expect4xx(t, "POST", "/api/v1/workflows/"+url.PathEscape(h)+"/runs", `{}`)
		p.expect4xx(t, "POST", "/api/v1/workflows/demo-text/runs", fmt.Sprintf(`{"input": {"x": 1}, "additionalMetadata": {%s: "v"}}`, js))
		p.expect4xx(t, "POST", "/api/v1/workflows/demo-text/runs", fmt.Sprintf(`{"input": {"x": 1}, "additionalMetadata": {"k": %s}}`, js))
		p.expect4xx(t, "GET", "/api/v1/runs/"+url.PathEscape(h), "")
		p.expect4xx(t, "GET", "/api/v1/runs/"+url.PathEscape(h)+"/stream", "")
		p.expect4xx(t, "GET", "/api/v1/runs?workflow="+q, "")
		p.expect4xx(t, "GET", "/api/v1/runs?status="+q, "")
		p.expect4xx(t, "GET", "/api/v1/runs/"+p.alphaRun+"/stream?after="+q, "")
		p.expect4xx(t, "GET", "/api/v1/runs/"+p.alphaRun+"/stream?types="+q, "")
		p.expect4xx(t, "GET", "/api/v1/stream?metaKey="+q+"&metaValue=v", "")
		p.expect4xx(t, "GET", "/api/v1/stream?metaKey=k&metaValue="+q, "")
		p.expect4xx(t, "POST", "/api/v1/tokens", fmt.Sprintf(`{"metaKey": %s, "metaValue": "v"}`, js))
		p.expect4xx(t, "POST", "/api/v1/tokens", fmt.Sprintf(`{"runId": %s}`, js))
		p.expect4xx(t, "POST", "/api/v1/events", fmt.Sprintf(`{"key": %s}`, js))
		p.expect4xx(t, "POST", "/runnel.v1.RunService/GetRun", fmt.Sprintf(`{"runId": %s}`, js))
		p.expect4xx(t, "POST", "/runnel.v1.RunService/TriggerRun", fmt.Sprintf(`{"workflow": %s}`, js))
		p.expect4xx(t, "POST", "/runnel.v1.RunService/ListRuns", fmt.Sprintf(`{"workflow": %s, "metadata": {%s: %s}}`, js, js, js))
		p.expect4xx(t, "POST", "/runnel.v1.RunService/CreateToken", fmt.Sprintf(`{"tenant": %s}`, js))
	}
	for _, body := range []string{"null", "[]", `"x"`, "{", `{"input": }`, "\xff\xfe{}", strings.Repeat("[", 100000)} {
		p.expect4xx(t, "POST", "/api/v1/workflows/demo-text/runs", body)
		p.expect4xx(t, "POST", "/runnel.v1.RunService/TriggerRun", body)
	}
}

// expect4xx sends a request with alpha's token and requires a 4xx answer.
func (p *probeTarget) expect4xx(t *testing.T, method, path, body string) {
	t.Helper()
	status, got := p.do(t, method, path, p.alpha, body)
	if status < 400 || status >= 500 {
		// Some hostile values are valid data (a workflow named "é…" that
		// does not exist is a 404; metadata with a right-to-left mark is
		// stored as given): only a 2xx on a path that cannot succeed, or any
		// 5xx, is a failure.
		if status >= 500 || (status < 300 && !acceptsAnyString(path, body)) {
			t.Errorf("%s %.120q with body %.120q: %d %.300s", method, path, body, status, got)
		}
	}
}

// acceptsAnyString reports whether a request may legitimately succeed with
// an arbitrary valid string in it (a metadata value, a filter that matches
// nothing).
func acceptsAnyString(path, body string) bool {
	return strings.Contains(path, "?") || strings.Contains(body, "additionalMetadata") ||
		strings.Contains(body, "metadata") || strings.Contains(body, "metaKey") ||
		strings.HasPrefix(path, "/api/v1/events") || strings.Contains(path, "CreateToken")
}

// After all of the above the engine still answers and alpha's run is intact.
func (p *probeTarget) stillServes(t *testing.T) {
	status, body := p.do(t, "GET", "/api/v1/runs/"+p.alphaRun, p.alpha, "")
	require.Equal(t, http.StatusOK, status, "%s", body)
	require.Contains(t, string(body), `"status":"running"`)
	status, _ = p.do(t, "GET", "/readyz", "", "")
	require.Equal(t, http.StatusOK, status)
}
