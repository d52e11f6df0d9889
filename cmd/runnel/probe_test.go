package main_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
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
	// Short connection timeouts, so that the slow-socket cases finish
	// quickly; the defaults are the same code with other values.
	args := []string{"server", "--addr", addr, "--data-dir", p.dataDir,
		"--idle-timeout", probeIdleTimeout.String(), "--write-timeout", "2s", "--log-level", "debug"}
	if dbURL != "" {
		args = append(args, "--db", dbURL)
	}
	p.engine = startEngine(t, p.url, args...)
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
		t.Run("F1ForeignPreviousWorker", p.foreignPreviousWorker)
		t.Run("F2AuthBeforeBody", p.authBeforeBody)
		t.Run("F4Heartbeat", p.heartbeat)
		t.Run("F5EmptyMetaValue", p.emptyMetaValue)
		t.Run("F7IdleConnections", p.idleConnections)
		t.Run("F8F9F10BadText", p.badText)
		t.Run("F11Headers", p.headers)
		t.Run("F12FileModes", p.fileModes)
		t.Run("AlsoSeen", p.alsoSeen)
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
		p.expect4xx(t, "POST", "/runnel.v1.RunService/ListRuns", fmt.Sprintf(`{"workflow": %s, "metaKey": %s, "metaValue": %s}`, js, js, js))
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

const probeIdleTimeout = 2 * time.Second

// alphaWorkerID is the worker running alpha's run, as a browser token sees
// it (attempts[].workerId): the id the probe used against alpha.
func (p *probeTarget) alphaWorkerID(t *testing.T) string {
	t.Helper()
	status, body := p.do(t, "GET", "/api/v1/runs/"+p.alphaRun, p.alphaBrows, "")
	require.Equal(t, http.StatusOK, status, "%s", body)
	var run struct {
		Status string `json:"status"`
		Steps  []struct {
			Attempt  int `json:"attempt"`
			Attempts []struct {
				WorkerID string `json:"workerId"`
			} `json:"attempts"`
		} `json:"steps"`
	}
	require.NoError(t, json.Unmarshal(body, &run))
	require.Equal(t, "running", run.Status)
	require.Len(t, run.Steps, 1)
	require.Equal(t, 1, run.Steps[0].Attempt, "alpha's step was re-run")
	require.NotEmpty(t, run.Steps[0].Attempts[0].WorkerID)
	return run.Steps[0].Attempts[0].WorkerID
}

// Finding 1: beta registering a worker that names alpha's worker as its
// previous id changes nothing of alpha's: same session, same attempt.
func (p *probeTarget) foreignPreviousWorker(t *testing.T) {
	victim := p.alphaWorkerID(t)
	for range 3 {
		status, body := p.rpc(t, "WorkerService/RegisterWorker", p.beta, fmt.Sprintf(
			`{"name": "intruder", "slots": 1, "previousWorkerId": %q, "running": [{"stepRunId": "x", "attempt": 1}]}`, victim))
		require.Equal(t, http.StatusOK, status, "%s", body)
		require.NotContains(t, string(body), "resumed")
	}
	require.Equal(t, victim, p.alphaWorkerID(t), "alpha's attempt moved or was re-queued")
	status, body := p.rpc(t, "WorkerService/Heartbeat", p.alpha, fmt.Sprintf(`{"workerId": %q}`, victim))
	require.Equal(t, http.StatusOK, status, "alpha's worker lost its registration: %s", body)
}

// Finding 2: a huge body without a token is refused from its headers, while
// the client is still sending: the engine reads none of it.
func (p *probeTarget) authBeforeBody(t *testing.T) {
	for _, path := range []string{"/runnel.v1.RunService/TriggerRun", "/runnel.v1.WorkerService/PutStream", "/api/v1/workflows/demo-text/runs"} {
		conn, err := net.Dial("tcp", strings.TrimPrefix(p.url, "http://"))
		require.NoError(t, err)
		defer conn.Close()
		require.NoError(t, conn.SetDeadline(time.Now().Add(30*time.Second)))
		_, err = fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: probe\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{\"input\": \"", path, 60<<20)
		require.NoError(t, err)
		// net/http drains up to 256 KiB of an unread body before it answers
		// (to keep the connection if the rest is short): send a little more.
		_, err = conn.Write(bytes.Repeat([]byte("a"), 300<<10))
		require.NoError(t, err)
		// 59.7 MB are still unsent: an answer now was given without them.
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		require.NoError(t, err, "%s: no answer before the body was sent", path)
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode, path)
		resp.Body.Close()
	}
	// With a token, each procedure reads only what it needs.
	big := `{"workflow": "demo-text", "input": "` + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("a"), 7<<20)) + `"}`
	status, body := p.rpc(t, "RunService/TriggerRun", p.alpha, big)
	require.Equal(t, http.StatusTooManyRequests, status, "%.300s", body) // Connect's resource_exhausted
	require.Contains(t, string(body), "larger than configured max")
}

// Finding 4: a heartbeat for alpha's worker from beta is a 404 and from a
// browser token a 403; neither keeps it alive.
func (p *probeTarget) heartbeat(t *testing.T) {
	victim := p.alphaWorkerID(t)
	status, body := p.rpc(t, "WorkerService/Heartbeat", p.beta, fmt.Sprintf(`{"workerId": %q}`, victim))
	require.Equal(t, http.StatusNotFound, status, "%s", body)
	status, body = p.rpc(t, "WorkerService/Heartbeat", p.alphaBrows, fmt.Sprintf(`{"workerId": %q}`, victim))
	require.Equal(t, http.StatusForbidden, status, "%s", body)
	for _, m := range []string{"PutStream", "CompleteStep", "FailStep", "SpawnRun"} {
		status, body = p.rpc(t, "WorkerService/"+m, p.alphaBrows, `{"stepRunId": "x", "parentStepRunId": "x", "attempt": 1}`)
		require.Equal(t, http.StatusForbidden, status, "%s with a browser token: %s", m, body)
	}
}

// Finding 5: a metadata browser token with an empty value is refused at mint.
func (p *probeTarget) emptyMetaValue(t *testing.T) {
	status, body := p.do(t, "POST", "/api/v1/tokens", p.alpha, `{"metaKey": "session", "metaValue": ""}`)
	require.Equal(t, http.StatusBadRequest, status, "%s", body)
	require.Contains(t, string(body), "metaValue")
}

// Finding 7: a connection that sends nothing, or idles after a request, is
// closed by the engine.
func (p *probeTarget) idleConnections(t *testing.T) {
	host := strings.TrimPrefix(p.url, "http://")
	keepAlive, err := net.Dial("tcp", host)
	require.NoError(t, err)
	defer keepAlive.Close()
	_, err = fmt.Fprintf(keepAlive, "GET /healthz HTTP/1.1\r\nHost: probe\r\n\r\n")
	require.NoError(t, err)
	r := bufio.NewReader(keepAlive)
	resp, err := http.ReadResponse(r, nil)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	// The next read ends when the engine closes the idle connection (a
	// generous deadline only turns a hang into a failure).
	require.NoError(t, keepAlive.SetReadDeadline(time.Now().Add(30*probeIdleTimeout)))
	_, err = r.ReadByte()
	require.ErrorIs(t, err, io.EOF, "an idle keep-alive connection stayed open")

	// An h2c connection (prior knowledge) with no request is closed too.
	h2, err := net.Dial("tcp", host)
	require.NoError(t, err)
	defer h2.Close()
	_, err = io.WriteString(h2, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
	require.NoError(t, err)
	require.NoError(t, h2.SetReadDeadline(time.Now().Add(30*probeIdleTimeout)))
	_, err = io.Copy(io.Discard, h2)
	require.NoError(t, err, "an idle h2c connection stayed open")
}

// Findings 8, 9 and 10: NUL, invalid UTF-8 and ';' in ids, metadata,
// filters, scopes and inputs are 400s naming the problem, on both stores,
// and a stream is refused before it starts.
func (p *probeTarget) badText(t *testing.T) {
	for _, bad := range []string{"\x00", "a\x00b", "\xff\xfe"} {
		js, _ := json.Marshal(bad)
		if bad == "\xff\xfe" {
			js = []byte("\"\xff\xfe\"") // raw invalid UTF-8, as a careless client sends it
		}
		q := url.QueryEscape(bad)
		for _, r := range []struct{ method, path, body string }{
			{"POST", "/api/v1/workflows/" + url.PathEscape(bad) + "/runs", `{}`},
			{"POST", "/api/v1/workflows/demo-text/runs", fmt.Sprintf(`{"additionalMetadata": {%s: "v"}}`, js)},
			{"POST", "/api/v1/workflows/demo-text/runs", fmt.Sprintf(`{"additionalMetadata": {"k": %s}}`, js)},
			{"GET", "/api/v1/runs/" + url.PathEscape(bad), ""},
			{"GET", "/api/v1/runs/" + url.PathEscape(bad) + "/stream", ""},
			{"GET", "/api/v1/runs?workflow=" + q, ""},
			{"GET", "/api/v1/runs?meta=" + url.QueryEscape("k:"+bad), ""},
			{"GET", "/api/v1/stream?metaKey=" + q + "&metaValue=v", ""},
			{"GET", "/api/v1/stream?metaKey=k&metaValue=" + q, ""},
			{"POST", "/api/v1/tokens", fmt.Sprintf(`{"metaKey": %s, "metaValue": "v"}`, js)},
			{"POST", "/api/v1/tokens", fmt.Sprintf(`{"runId": %s}`, js)},
			{"POST", "/api/v1/events", fmt.Sprintf(`{"key": %s}`, js)},
			{"POST", "/runnel.v1.RunService/GetRun", fmt.Sprintf(`{"runId": %s}`, js)},
			{"POST", "/runnel.v1.RunService/TriggerRun", fmt.Sprintf(`{"workflow": %s}`, js)},
			{"POST", "/runnel.v1.RunService/ListRuns", fmt.Sprintf(`{"metaKey": "k", "metaValue": %s}`, js)},
			{"POST", "/runnel.v1.RunService/CreateToken", fmt.Sprintf(`{"tenant": %s}`, js)},
		} {
			status, body := p.do(t, r.method, r.path, p.alpha, r.body)
			require.Equal(t, http.StatusBadRequest, status, "%s %q %q: %s", r.method, r.path, r.body, body)
		}
	}
	// A NUL escaped inside a JSON input is valid JSON and is kept as sent;
	// raw invalid UTF-8 in an input is not JSON.
	status, body := p.do(t, "POST", "/api/v1/workflows/demo-text/runs", p.alpha, `{"input": {"text": "a\u0000b"}}`)
	require.Equal(t, http.StatusCreated, status, "%s", body)
	status, body = p.do(t, "POST", "/api/v1/workflows/demo-text/runs", p.alpha, "{\"input\": {\"text\": \"\xff\xfe\"}}")
	require.Equal(t, http.StatusBadRequest, status, "%s", body)
	for _, path := range []string{
		"/api/v1/runs?workflow=demo-text;x", "/api/v1/runs?status=completed;x",
		"/api/v1/runs/" + p.alphaRun + "/stream?types=run.completed;x",
		"/api/v1/stream?metaKey=session&metaValue=s1;x", "/api/v1/runs?before=garbage",
	} {
		status, body := p.do(t, "GET", path, p.alpha, "")
		require.Equal(t, http.StatusBadRequest, status, "%s: %s", path, body)
	}
}

// Finding 11: every page and JSON answer carries the browser protections;
// the dashboard has one policy wherever it is served.
func (p *probeTarget) headers(t *testing.T) {
	var csp string
	for _, path := range []string{"/", "/ui/", "/ui/index.html", "/api/v1/runs", "/api/v1/openapi.json", "/sdk/runnel.js", "/nope"} {
		resp := p.send(t, "GET", path, p.alpha, "")
		resp.Body.Close()
		require.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"), path)
		require.Equal(t, "DENY", resp.Header.Get("X-Frame-Options"), path)
		if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			got := resp.Header.Get("Content-Security-Policy")
			require.Contains(t, got, "frame-ancestors 'none'", path)
			if csp == "" {
				csp = got
			}
			require.Equal(t, csp, got, "%s has another policy than the dashboard", path)
		}
	}
	require.NotEmpty(t, csp, "no page served as HTML")
}

// Finding 12: the data directory and the SQLite files are the owner's only.
func (p *probeTarget) fileModes(t *testing.T) {
	if !fileExists(filepath.Join(p.dataDir, "runnel.db")) {
		t.Skip("not on SQLite")
	}
	info, err := os.Stat(p.dataDir)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), info.Mode().Perm(), "data directory")
	for _, name := range []string{"runnel.db", "runnel.db-wal", "runnel.db-shm", "admin.token"} {
		info, err := os.Stat(filepath.Join(p.dataDir, name))
		if errors.Is(err, os.ErrNotExist) && name != "runnel.db" && name != "admin.token" {
			continue
		}
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), info.Mode().Perm(), name)
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// The probe's other observations, as decided in docs/operations.md.
func (p *probeTarget) alsoSeen(t *testing.T) {
	// The auth scheme is case-insensitive (RFC 9110).
	status, body := p.do(t, "GET", "/api/v1/runs/"+p.alphaRun, "", "", "Authorization", "bearer "+p.alpha)
	require.Equal(t, http.StatusOK, status, "%s", body)
	// A null body is not an object.
	status, body = p.do(t, "POST", "/api/v1/workflows/demo-text/runs", p.alpha, "null")
	require.Equal(t, http.StatusBadRequest, status, "%s", body)
	// A position beyond the log's head is refused rather than skipping
	// every event up to it.
	status, body = p.do(t, "GET", "/api/v1/runs/"+p.alphaRun+"/stream?after=999999999999", p.alpha, "")
	require.Equal(t, http.StatusBadRequest, status, "%s", body)
	// Cross-origin pages allowed by --cors-origin can read Retry-After; no
	// origin is allowed here, so only the policy is checked in http_test.

	// A revoked API token is refused at once, with the browser tokens it
	// minted; a listing never shows a secret.
	status, body = p.rpc(t, "RunService/CreateToken", p.admin, `{"tenant": "alpha", "name": "probe-revoke"}`)
	require.Equal(t, http.StatusOK, status, "%s", body)
	tok := jsonField(t, body, "token")
	status, body = p.do(t, "POST", "/api/v1/tokens", tok, fmt.Sprintf(`{"runId": %q}`, p.alphaRun))
	require.Equal(t, http.StatusCreated, status, "%s", body)
	browser := jsonField(t, body, "token")
	status, body = p.rpc(t, "RunService/ListTokens", p.admin, `{}`)
	require.Equal(t, http.StatusOK, status, "%s", body)
	require.NotContains(t, string(body), tok, "a listing shows a secret")
	var list struct {
		Tokens []struct{ ID, Tenant, Name string } `json:"tokens"`
	}
	require.NoError(t, json.Unmarshal(body, &list), "%s", body)
	id := ""
	for _, lt := range list.Tokens {
		if lt.Tenant == "alpha" && lt.Name == "probe-revoke" {
			id = lt.ID
		}
	}
	require.NotEmpty(t, id, "minted token not listed: %s", body)
	status, body = p.rpc(t, "RunService/RevokeToken", p.beta, fmt.Sprintf(`{"tokenId": %q}`, id))
	require.Equal(t, http.StatusForbidden, status, "an API token revoked another tenant's token: %s", body)
	status, body = p.rpc(t, "RunService/RevokeToken", p.admin, fmt.Sprintf(`{"tokenId": %q}`, id))
	require.Equal(t, http.StatusOK, status, "%s", body)
	for _, revoked := range []string{tok, browser} {
		status, body = p.do(t, "GET", "/api/v1/runs/"+p.alphaRun, revoked, "")
		require.Equal(t, http.StatusUnauthorized, status, "%s", body)
	}
}

// Finding 13: a database URL the engine cannot use is named without its
// password, whatever went wrong with it.
func TestProbeRedactsDatabaseURLs(t *testing.T) {
	t.Parallel()
	for _, db := range []string{
		"postgress://user:s3cretpw@127.0.0.1:1/db",
		"postgres://user:s3cretpw@127.0.0.1:1/db?connect_timeout=1",
		"postgres://user:s3cretpw@[::1/db",
		"host=127.0.0.1 port=1 user=u password=s3cretpw dbname=db connect_timeout=1",
	} {
		cmd := exec.Command(runnelBin, "server", "--db", db, "--addr", freeAddr(t), "--data-dir", t.TempDir())
		out, err := cmd.CombinedOutput()
		require.Error(t, err, "%s", out)
		require.NotContains(t, string(out), "s3cretpw", "runnel server --db %q", db)
	}
}
