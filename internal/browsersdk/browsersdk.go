// Package browsersdk serves Runnel's browser client, runnel.js: a small
// dependency-free ES module that follows a run (or a metadata pair) over
// EventSource, decodes binary payloads, reports its status and can resume
// after a page reload. It is embedded in the binary and served at Path, so
// a page needs nothing but an import:
//
//	import { subscribe } from "http://127.0.0.1:7077/sdk/runnel.js";
package browsersdk

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"net/http"
	"time"
)

// Path is where the engine serves the module.
const Path = "/sdk/runnel.js"

// runnel.js is the browser build of the TypeScript SDK (@runnel/sdk in
// sdk/typescript), bundled by esbuild and committed so that building the
// engine needs no Node. Regenerating it does (npm ci in sdk/typescript
// first); a test in sdk/typescript fails when it is stale.
//
//go:generate npm --prefix ../../sdk/typescript/packages/sdk run build:module
//go:embed runnel.js
var source []byte

// etag identifies this build's module, so a revalidation costs a 304.
var etag = func() string {
	sum := sha256.Sum256(source)
	return `"` + hex.EncodeToString(sum[:8]) + `"`
}()

// Source returns the module's text.
func Source() []byte { return bytes.Clone(source) }

// Mount serves the module at Path on mux.
func Mount(mux *http.ServeMux) {
	mux.Handle("GET "+Path, Handler())
}

// Handler serves the module.
//
// The URL carries no version, so browsers must revalidate it (no-cache),
// which the ETag makes cheap: a new engine's module is picked up at once.
// Any origin may import it: module scripts are fetched with CORS, and the
// file is public code, with no credentials involved.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/javascript; charset=utf-8")
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", etag)
		h.Set("Access-Control-Allow-Origin", "*")
		// Pages isolated with Cross-Origin-Embedder-Policy may load it too.
		h.Set("Cross-Origin-Resource-Policy", "cross-origin")
		h.Set("X-Content-Type-Options", "nosniff")
		http.ServeContent(w, r, "runnel.js", time.Time{}, bytes.NewReader(source))
	})
}
