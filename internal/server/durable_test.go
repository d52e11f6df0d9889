package server_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/api"
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

// A standalone durable stream is invisible to another tenant's token and
// to a browser token (browser tokens are minted for runs or metadata
// pairs, never for a durable stream yet): every protocol endpoint answers
// 404, and the stream is unchanged. Its owner reads it back whole.
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

		for _, tok := range []struct{ name, secret string }{{"tenant B", tokB}, {"browser", browser}} {
			for _, rq := range []struct {
				method, query, body string
				header             []string
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
	require.False(t, strings.HasPrefix(api.DurablePrefix, doc.Servers[0].URL), "the protocol moved under the described prefix: describe it")
	for path := range doc.Paths.Map() {
		require.False(t, strings.HasPrefix(doc.Servers[0].URL+path, api.DurablePrefix), "openapi.json describes %s", path)
	}
}
