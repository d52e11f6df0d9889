package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/api"
)

// loadOpenAPI loads and validates the description the engine embeds.
func loadOpenAPI(t testing.TB) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPISpec())
	require.NoError(t, err, "load openapi.json")
	require.NoError(t, doc.Validate(context.Background()), "openapi.json is not a valid OpenAPI document")
	return doc
}

// specCheck sends requests to a real node and checks each request and
// response against the OpenAPI description, remembering which documented
// statuses of which operations it saw.
type specCheck struct {
	t      *testing.T
	doc    *openapi3.T
	router routers.Router
	base   string          // the node's URL
	seen   map[string]bool // "GET /runs/{runId} 404"
	events map[string]bool // SSE event names seen
	opts   *openapi3filter.Options
}

func newSpecCheck(t *testing.T, doc *openapi3.T, nodeURL string) *specCheck {
	t.Helper()
	router, err := gorillamux.NewRouter(doc)
	require.NoError(t, err)
	return &specCheck{
		t: t, doc: doc, router: router, base: nodeURL, seen: map[string]bool{}, events: map[string]bool{},
		opts: &openapi3filter.Options{
			AuthenticationFunc: tokenPresent,
			// A status the description does not list is a failure.
			IncludeResponseStatus:   true,
			MultiError:              true,
			SchemaValidationOptions: []openapi3.SchemaValidationOption{openapi3.EnableFormatValidation()},
		},
	}
}

// tokenPresent is the security check of the description: a bearer header
// or a token query parameter is there. Whether the token is good is the
// server's business (401), not the description's.
func tokenPresent(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	req := in.RequestValidationInput.Request
	switch in.SecuritySchemeName {
	case "bearerAuth":
		if tok, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer "); ok && tok != "" {
			return nil
		}
		return errors.New("no bearer token")
	case "tokenQuery":
		if req.URL.Query().Get("token") != "" {
			return nil
		}
		return errors.New("no token query parameter")
	}
	return fmt.Errorf("unknown security scheme %q", in.SecuritySchemeName)
}

// apiReq is one request to /api/v1 and what must come of it.
type apiReq struct {
	method, path string // path under /api/v1, with its query
	token        string // sent as a bearer token when set
	body         string
	header       []string // name, value pairs
	status       int      // the status the server must answer
	// specRejects: the request itself breaks the description (a bad body,
	// a missing token, ...), so request validation must fail too.
	specRejects bool
}

func (r apiReq) build(ctx context.Context, base string) *http.Request {
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, base+"/api/v1"+r.path, body)
	if err != nil {
		panic(err)
	}
	if r.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	for i := 0; i+1 < len(r.header); i += 2 {
		req.Header.Set(r.header[i], r.header[i+1])
	}
	return req
}

// validateRequest finds the request's operation and validates the request
// against it; the input is kept for the response's validation.
func (c *specCheck) validateRequest(r apiReq) *openapi3filter.RequestValidationInput {
	c.t.Helper()
	req := r.build(context.Background(), c.base)
	route, params, err := c.router.FindRoute(req)
	require.NoError(c.t, err, "%s %s is not in the description", r.method, r.path)
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: c.opts}
	err = openapi3filter.ValidateRequest(context.Background(), in)
	if r.specRejects {
		require.Error(c.t, err, "%s %s: the description accepts a request the test means to be invalid", r.method, r.path)
	} else {
		require.NoError(c.t, err, "%s %s: request does not match the description", r.method, r.path)
	}
	return in
}

// do sends a JSON API request, checks its status, validates request and
// response, and returns the decoded body.
func (c *specCheck) do(r apiReq) map[string]any {
	c.t.Helper()
	in := c.validateRequest(r)
	resp, err := http.DefaultClient.Do(r.build(context.Background(), c.base))
	require.NoError(c.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err)
	require.Equal(c.t, r.status, resp.StatusCode, "%s %s: %s", r.method, r.path, raw)

	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header, Options: c.opts,
	}
	out.SetBodyBytes(raw)
	require.NoError(c.t, openapi3filter.ValidateResponse(context.Background(), out),
		"%s %s: response %d does not match the description: %s", r.method, r.path, resp.StatusCode, raw)
	c.seen[in.Route.Method+" "+in.Route.Path+" "+strconv.Itoa(resp.StatusCode)] = true

	var body map[string]any
	require.NoError(c.t, json.Unmarshal(raw, &body), "%s %s: body %s", r.method, r.path, raw)
	return body
}

// sseMessage is one SSE message (comments are not messages).
type sseMessage struct {
	id, event string
	data      map[string]any
}

// stream opens an SSE endpoint, validates the request, the status, the
// headers and the content type against the description, and then each
// message's data against the schema the description names for its event
// (x-sse-data). It reads until the server ends the stream or done says
// enough.
func (c *specCheck) stream(r apiReq, done func([]sseMessage) bool) []sseMessage {
	c.t.Helper()
	r.status = http.StatusOK
	in := c.validateRequest(r)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(r.build(ctx, c.base))
	require.NoError(c.t, err)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(resp.Body)
		c.t.Fatalf("%s %s: status %d: %s", r.method, r.path, resp.StatusCode, raw)
	}

	// Status and headers; the body is a stream, checked message by message.
	headerOpts := *c.opts
	headerOpts.ExcludeResponseBody = true
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header, Options: &headerOpts,
	}
	out.SetBodyBytes(nil)
	require.NoError(c.t, openapi3filter.ValidateResponse(context.Background(), out), "%s %s: stream headers", r.method, r.path)
	c.seen[in.Route.Method+" "+in.Route.Path+" 200"] = true
	media := in.Route.Operation.Responses.Status(http.StatusOK).Value.Content.Get(resp.Header.Get("Content-Type"))
	require.NotNil(c.t, media, "%s %s: content type %q is not in the description", r.method, r.path, resp.Header.Get("Content-Type"))
	dataSchemas, ok := media.Extensions["x-sse-data"].(map[string]any)
	require.True(c.t, ok, "the event-stream media type names no data schemas (x-sse-data)")

	var msgs []sseMessage
	var cur sseMessage
	var data string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, ": "):
			continue
		case strings.HasPrefix(line, "id: "):
			cur.id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			cur.event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = strings.TrimPrefix(line, "data: ")
		case line == "":
			if cur.event == "" && data == "" {
				continue
			}
			cur.data = c.checkSSEData(dataSchemas, cur, data)
			msgs = append(msgs, cur)
			cur, data = sseMessage{}, ""
			if done != nil && done(msgs) {
				return msgs
			}
		default:
			c.t.Fatalf("unexpected SSE line %q", line)
		}
	}
	require.NoError(c.t, sc.Err())
	require.True(c.t, done == nil, "%s %s ended before the test saw what it waited for; got %d messages", r.method, r.path, len(msgs))
	return msgs
}

// checkSSEData validates one message's data against the schema the
// description names for its event, and the message's framing: events carry
// their position as id and their type as name, the end message no id.
func (c *specCheck) checkSSEData(schemas map[string]any, m sseMessage, data string) map[string]any {
	c.t.Helper()
	name, ok := schemas[m.event].(string)
	require.True(c.t, ok, "SSE event %q has no data schema in the description", m.event)
	ref := c.doc.Components.Schemas[name]
	require.NotNil(c.t, ref, "x-sse-data names schema %q, which is not in components", name)
	var v any
	require.NoError(c.t, json.Unmarshal([]byte(data), &v), "SSE data %s", data)
	err := ref.Value.VisitJSON(v, openapi3.EnableJSONSchema2020(), openapi3.EnableFormatValidation(), openapi3.MultiErrors())
	require.NoError(c.t, err, "SSE %q data does not match %s: %s", m.event, name, data)
	obj := v.(map[string]any)
	if m.event == "end" {
		require.Empty(c.t, m.id, "the end message carries no id")
	} else {
		require.NotEmpty(c.t, m.id, "event without a position")
		require.Equal(c.t, m.event, obj["type"], "event name and data type differ")
	}
	c.events[m.event] = true
	return obj
}

// requireAllStatusesSeen fails for every status the description lists that
// the test did not see, except those in notReachable.
func (c *specCheck) requireAllStatusesSeen(notReachable ...string) {
	c.t.Helper()
	var missing []string
	for path, item := range c.doc.Paths.Map() {
		for method, op := range item.Operations() {
			for status := range op.Responses.Map() {
				if slices.Contains(notReachable, status) {
					continue
				}
				if key := method + " " + path + " " + status; !c.seen[key] {
					missing = append(missing, key)
				}
			}
		}
	}
	slices.Sort(missing)
	require.Empty(c.t, missing, "documented responses the test never produced")
}

// sseDataNames lists the event names the description gives a data schema.
func sseDataNames(t *testing.T, doc *openapi3.T) []string {
	t.Helper()
	media := doc.Components.Responses["EventStream"].Value.Content.Get("text/event-stream")
	require.NotNil(t, media)
	var names []string
	for name := range media.Extensions["x-sse-data"].(map[string]any) {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// bigBody is a JSON object over the request size limit: the given fields
// (`"key": "k", ` or empty), then field holding a long string.
func bigBody(fields, field string) string {
	var b bytes.Buffer
	b.WriteString("{" + fields + `"` + field + `": "`)
	b.WriteString(strings.Repeat("x", api.MaxRequestBody))
	b.WriteString(`"}`)
	return b.String()
}
