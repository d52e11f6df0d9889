package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/api"
	"github.com/runnel-dev/runnel/internal/demo"
)

// durableDo sends one Durable Streams protocol request.
func durableDo(t *testing.T, method, url, token, body string, header ...string) (*http.Response, string) {
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
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

// A standalone durable stream is invisible to another tenant's token, to a
// browser token for a metadata pair and to a browser token for another
// durable stream: every protocol endpoint answers 404, and the stream is
// unchanged. Its owner reads it back whole.
func TestDurableStreamIsolation(t *testing.T) {
	forEachStore(t, func(t *testing.T, n *node) {
		ctx := context.Background()
		admin := n.srv.AdminToken
		url := n.url + "/v1/stream/iso/a"
		resp, _ := durableDo(t, "PUT", url, admin, "hello ", "Content-Type", "text/plain")
		require.Equal(t, 201, resp.StatusCode)
		resp, _ = durableDo(t, "POST", url, admin, "world", "Content-Type", "text/plain")
		require.Equal(t, 204, resp.StatusCode)
		tail := resp.Header.Get("Stream-Next-Offset")

		tokB, err := n.client.Admin().CreateToken(ctx, "tenant-b", "")
		require.NoError(t, err)
		status, body := call(t, "POST", n.url+"/api/v1/tokens", admin, `{"metaKey": "user", "metaValue": "u1", "ttl": "1m"}`)
		require.Equal(t, 201, status, "%v", body)
		browser := body["token"].(string)
		resp, _ = durableDo(t, "PUT", n.url+"/v1/stream/iso/b", admin, "", "Content-Type", "text/plain")
		require.Equal(t, 201, resp.StatusCode)
		status, body = call(t, "POST", n.url+"/api/v1/tokens", admin, `{"stream": "iso/b", "ttl": "1m"}`)
		require.Equal(t, 201, status, "%v", body)
		otherStream := body["token"].(string)

		for _, tok := range []struct{ name, secret string }{{"tenant B", tokB}, {"browser", browser}, {"browser for another stream", otherStream}} {
			for _, rq := range []struct {
				method, query, body string
				header              []string
			}{
				{"HEAD", "", "", nil},
				{"GET", "", "", nil},
				{"GET", "?offset=-1&live=long-poll", "", nil},
				{"GET", "?offset=now&live=sse", "", nil},
				{"POST", "", "x", []string{"Content-Type", "text/plain"}},
				{"POST", "", "", []string{"Stream-Closed", "true"}},
				{"PUT", "", "", []string{"Content-Type", "text/plain"}},
				{"PUT", "", "", []string{"Stream-Forked-From", "/v1/stream/iso/a"}},
				{"DELETE", "", "", nil},
			} {
				if rq.method == "PUT" && tok.name == "tenant B" && rq.header[0] == "Content-Type" {
					continue // B creating a stream of that name makes B's own (below)
				}
				target := url
				if rq.method == "PUT" && len(rq.header) > 0 && rq.header[0] == "Stream-Forked-From" {
					target = n.url + "/v1/stream/iso/fork" // forking another tenant's stream
				}
				resp, _ := durableDo(t, rq.method, target+rq.query, tok.secret, rq.body, rq.header...)
				require.Equal(t, 404, resp.StatusCode, "%s token: %s %s%s", tok.name, rq.method, target, rq.query)
			}
		}
		// The other tenant's PUT made nothing in A's tenant, and A's
		// stream is whole.
		resp, body2 := durableDo(t, "GET", url+"?offset=-1", admin, "")
		require.Equal(t, 200, resp.StatusCode)
		require.Equal(t, "hello world", body2)
		require.Equal(t, tail, resp.Header.Get("Stream-Next-Offset"))
		require.Equal(t, "true", resp.Header.Get("Stream-Up-To-Date"))
		// Tenant B may have a stream of the same name: its own.
		resp, _ = durableDo(t, "PUT", url, tokB, "", "Content-Type", "application/json")
		require.Equal(t, 201, resp.StatusCode)
		resp, body2 = durableDo(t, "GET", url+"?offset=-1", tokB, "")
		require.Equal(t, 200, resp.StatusCode)
		require.Equal(t, "[]", body2)
		// No token: 401, as the rest of the API.
		resp, _ = durableDo(t, "GET", url, "", "")
		require.Equal(t, 401, resp.StatusCode)
	})
}

// The Durable Streams protocol's routes (api.DurablePrefix) are left out of
// openapi.json on purpose: their contract is the protocol's specification
// (PROTOCOL.md of durable-streams/durable-streams: byte bodies, headers
// such as Stream-Next-Offset, status codes per mode), which OpenAPI cannot
// state usefully, and the protocol's own conformance suite checks them
// (internal/durablestreams/conformance). docs/durable-streams.md documents
// them. This test pins that exclusion: the prefix is outside the
// description's server URL, and no operation claims it.
func TestOpenAPIExcludesDurableStreamsProtocol(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	require.Equal(t, "/v1/stream/", api.DurablePrefix)
	require.Equal(t, "/v1/runs/{runId}/stream", api.RunStreamPath)
	require.False(t, strings.HasPrefix(api.RunStreamPath, doc.Servers[0].URL))
	require.False(t, strings.HasPrefix(api.DurablePrefix, doc.Servers[0].URL), "the protocol moved under the described prefix: describe it")
	for path := range doc.Paths.Map() {
		require.False(t, strings.HasPrefix(doc.Servers[0].URL+path, api.DurablePrefix), "openapi.json describes %s", path)
	}
}

// A run's events are readable through the protocol, read-only: one JSON
// message per event, offsets = positions, closed once the run ended; a
// browser token reads its own run only, another tenant's token gets 404.
func TestRunStreamThroughProtocol(t *testing.T) {
	forEachStore(t, func(t *testing.T, n *node) {
		startWorker(t, n, "demo", 2, demo.Workflows()...)
		ctx := context.Background()
		admin := n.srv.AdminToken
		runA, err := n.client.Admin().RunWorkflow(ctx, "demo-text", map[string]int{"chunks": 3, "intervalMs": 1})
		require.NoError(t, err)
		_, events := waitRun(t, n, runA)
		runB, err := n.client.Admin().RunWorkflow(ctx, "demo-text", map[string]int{"chunks": 1, "intervalMs": 1})
		require.NoError(t, err)
		waitRun(t, n, runB)
		url := n.url + "/v1/runs/" + runA + "/stream"

		resp, body := durableDo(t, "GET", url+"?offset=-1", admin, "")
		require.Equal(t, 200, resp.StatusCode, body)
		require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
		var msgs []map[string]any
		require.NoError(t, json.Unmarshal([]byte(body), &msgs))
		require.Len(t, msgs, len(events))
		for i, ev := range events {
			require.Equal(t, string(ev.Type), msgs[i]["type"], "message %d", i)
		}
		require.Equal(t, "true", resp.Header.Get("Stream-Closed"))
		tail := resp.Header.Get("Stream-Next-Offset")

		// At the tail of an ended run: EOF at once, in every mode.
		resp, _ = durableDo(t, "GET", url+"?offset="+tail+"&live=long-poll", admin, "")
		require.Equal(t, 204, resp.StatusCode)
		require.Equal(t, "true", resp.Header.Get("Stream-Closed"))
		resp, body = durableDo(t, "GET", url+"?offset="+tail+"&live=sse", admin, "")
		require.Equal(t, 200, resp.StatusCode)
		require.Contains(t, body, `"streamClosed":true`)
		resp, _ = durableDo(t, "HEAD", url, admin, "")
		require.Equal(t, 200, resp.StatusCode)
		require.Equal(t, tail, resp.Header.Get("Stream-Next-Offset"))

		// Read-only.
		for _, m := range []string{"POST", "PUT", "DELETE"} {
			resp, _ = durableDo(t, m, url, admin, "x", "Content-Type", "application/json")
			require.Equal(t, 405, resp.StatusCode, m)
		}

		// A browser token for run A reads it; one for run B, and another
		// tenant's token, get 404 on every endpoint.
		status, tb := call(t, "POST", n.url+"/api/v1/tokens", admin, `{"runId": "`+runA+`", "ttl": "1m"}`)
		require.Equal(t, 201, status)
		resp, _ = durableDo(t, "GET", url+"?offset=-1", tb["token"].(string), "")
		require.Equal(t, 200, resp.StatusCode)
		status, tb = call(t, "POST", n.url+"/api/v1/tokens", admin, `{"runId": "`+runB+`", "ttl": "1m"}`)
		require.Equal(t, 201, status)
		tokB, err := n.client.Admin().CreateToken(ctx, "tenant-b", "")
		require.NoError(t, err)
		for _, tok := range []string{tb["token"].(string), tokB} {
			for _, q := range []string{"HEAD ", "GET ?offset=-1", "GET ?offset=-1&live=long-poll", "GET ?offset=-1&live=sse"} {
				method, query, _ := strings.Cut(q, " ")
				resp, _ = durableDo(t, method, url+query, tok, "")
				require.Equal(t, 404, resp.StatusCode, q)
			}
		}
	})
}

// A browser token minted for one durable stream reads that stream (catch-up,
// long-poll, SSE, HEAD) and nothing else: writes to it are 403, runs and
// the rest of the API are out of its reach, and minting one needs an
// existing stream of the minter's tenant.
func TestDurableStreamBrowserToken(t *testing.T) {
	forEachStore(t, func(t *testing.T, n *node) {
		admin := n.srv.AdminToken
		url := n.url + "/v1/stream/chat/7"
		resp, _ := durableDo(t, "PUT", url, admin, "hi", "Content-Type", "text/plain")
		require.Equal(t, 201, resp.StatusCode)
		status, body := call(t, "POST", n.url+"/api/v1/tokens", admin, `{"stream": "chat/7", "ttl": "5m"}`)
		require.Equal(t, 201, status, "%v", body)
		tok := body["token"].(string)

		resp, got := durableDo(t, "GET", url+"?offset=-1", tok, "")
		require.Equal(t, 200, resp.StatusCode)
		require.Equal(t, "hi", got)
		resp, _ = durableDo(t, "HEAD", url, tok, "")
		require.Equal(t, 200, resp.StatusCode)
		resp, got = durableDo(t, "GET", url+"?offset=-1&live=long-poll", tok, "")
		require.Equal(t, 200, resp.StatusCode)
		require.Equal(t, "hi", got)
		sse := openSSE(t, url+"?offset=-1&live=sse&token="+tok, "")
		require.Equal(t, 200, sse.StatusCode)
		require.Equal(t, "text/event-stream", sse.Header.Get("Content-Type"))

		for _, rq := range []struct {
			method string
			header []string
		}{
			{"POST", []string{"Content-Type", "text/plain"}},
			{"POST", []string{"Stream-Closed", "true"}},
			{"PUT", []string{"Content-Type", "text/plain"}},
			{"DELETE", nil},
		} {
			resp, _ := durableDo(t, rq.method, url, tok, "x", rq.header...)
			require.Equal(t, 403, resp.StatusCode, "%s with a browser token", rq.method)
		}
		resp, got = durableDo(t, "GET", url+"?offset=-1", admin, "")
		require.Equal(t, "hi", got, "nothing changed")

		status, body = call(t, "GET", n.url+"/api/v1/runs", tok, "")
		require.Equal(t, 403, status, "%v", body)
		status, body = call(t, "POST", n.url+"/api/v1/tokens", admin, `{"stream": "no/such", "ttl": "5m"}`)
		requireAPIError(t, status, body, 404, "not_found", "unknown durable stream no/such")
		status, body = call(t, "POST", n.url+"/api/v1/tokens", admin, `{"stream": "chat/7", "runId": "x"}`)
		requireAPIError(t, status, body, 400, "invalid_argument", "not several")
		status, body = call(t, "POST", n.url+"/api/v1/tokens", tok, `{"stream": "chat/7"}`)
		require.Equal(t, 403, status, "a browser token cannot mint: %v", body)
	})
}

// Pipelined appends of one idempotent producer that reach the engine out of
// order are applied in sequence order (group commit sorts them, and holds
// one that overtook its predecessor until that arrives) instead of being
// refused with a sequence gap: every request succeeds, the stream holds the
// messages in producer order. A real gap is still refused.
func TestDurablePipelinedProducer(t *testing.T) {
	forEachStore(t, func(t *testing.T, n *node) {
		admin := n.srv.AdminToken
		url := n.url + "/v1/stream/pipe"
		resp, _ := durableDo(t, "PUT", url, admin, "", "Content-Type", "text/plain")
		require.Equal(t, 201, resp.StatusCode)
		const reqs = 32
		status := make(chan string, reqs)
		start := make(chan struct{})
		for seq := reqs - 1; seq >= 0; seq-- { // started last-first
			go func() {
				<-start
				resp, body := durableDo(t, "POST", url, admin, fmt.Sprintf("%02d;", seq),
					"Content-Type", "text/plain", "Producer-Id", "p", "Producer-Epoch", "0", "Producer-Seq", strconv.Itoa(seq))
				status <- fmt.Sprintf("%d %s", resp.StatusCode, body)
			}()
		}
		close(start)
		for range reqs {
			s := <-status
			require.True(t, strings.HasPrefix(s, "200") || strings.HasPrefix(s, "204"), "an append was refused: %s", s)
		}
		resp, got := durableDo(t, "GET", url+"?offset=-1", admin, "")
		require.Equal(t, 200, resp.StatusCode)
		var want strings.Builder
		for i := range reqs {
			fmt.Fprintf(&want, "%02d;", i)
		}
		require.Equal(t, want.String(), got)

		resp, _ = durableDo(t, "POST", url, admin, "x", "Content-Type", "text/plain", "Producer-Id", "p", "Producer-Epoch", "0", "Producer-Seq", "40")
		require.Equal(t, 409, resp.StatusCode, "a gap no request fills")
		require.Equal(t, "32", resp.Header.Get("Producer-Expected-Seq"))
	})
}
