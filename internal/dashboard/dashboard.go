// Package dashboard serves Runnel's web dashboard: static files embedded in
// the binary (no build step, no CDN, no outside request at run time). The
// page talks only to the public HTTP API and its SSE streams, so anything it
// shows can be scripted too.
package dashboard

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// ContentSecurityPolicy is the dashboard's policy: its own files only, no
// inline script or style, and no framing by any site.
const ContentSecurityPolicy = "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; " +
	"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// Mount serves the dashboard at / and its assets under /ui/ (where
// index.html is reachable too). Every route gets the same headers: the
// page's policy must not depend on the URL it was opened at.
func Mount(mux *http.ServeMux) {
	files, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	assets := http.StripPrefix("/ui/", http.FileServerFS(files))
	mux.Handle("GET /ui/", pageHeaders(assets))
	mux.Handle("GET /{$}", pageHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, files, "index.html")
	})))
}

// pageHeaders sets the policy, no framing and no sniffing, and makes
// browsers revalidate, so a new binary's dashboard is picked up at once
// (the files are small).
func pageHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdr := w.Header()
		hdr.Set("Content-Security-Policy", ContentSecurityPolicy)
		hdr.Set("X-Frame-Options", "DENY")
		hdr.Set("X-Content-Type-Options", "nosniff")
		hdr.Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}
