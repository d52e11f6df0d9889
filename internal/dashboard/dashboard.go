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

// Mount serves the dashboard at / and its assets under /ui/.
func Mount(mux *http.ServeMux) {
	files, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	assets := http.StripPrefix("/ui/", http.FileServerFS(files))
	mux.Handle("GET /ui/", noCache(assets))
	mux.Handle("GET /{$}", noCache(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy",
			"default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; connect-src 'self'")
		http.ServeFileFS(w, r, files, "index.html")
	})))
}

// noCache makes browsers revalidate, so a new binary's dashboard is picked
// up at once (the files are small).
func noCache(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}
