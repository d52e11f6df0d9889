package api

import (
	_ "embed"
	"net/http"
	"strconv"
)

// openAPISpec is the OpenAPI 3.1 description of the JSON API and its SSE
// streams. internal/server's OpenAPI test checks every handler's real
// responses against it, so a change to a response shape must change it too.
//
//go:embed openapi.json
var openAPISpec []byte

// OpenAPISpec returns the OpenAPI 3.1 description served at
// /api/v1/openapi.json.
func OpenAPISpec() []byte { return openAPISpec }

// serveOpenAPI serves the description without a token: it holds nothing
// secret, and client generators fetch it before they have one.
func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(openAPISpec)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(openAPISpec)
}
