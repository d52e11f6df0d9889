package main

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/runnel-dev/runnel"
)

// moduleClient fetches the engine's browser client; the timeout bounds a
// page load when the engine hangs.
var moduleClient = &http.Client{Timeout: 10 * time.Second}

// serveModule re-serves the engine's browser client (GET /sdk/runnel.js)
// at /runnel.js. The page imports it from this origin, so the engine need
// not be reachable from browsers, the page's policy stays 'self', and the
// page always gets the client of the engine it talks to. The engine's
// cache headers (no-cache with an ETag) pass through, so a reload costs a
// 304.
func serveModule(c *runnel.Client, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		src := strings.TrimSuffix(c.Host(), "/") + "/sdk/runnel.js"
		req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, src, nil)
		if err != nil {
			log.Error("browser client request", "url", src, "error", err)
			writeError(w, http.StatusInternalServerError, "internal", "bad engine address")
			return
		}
		if etag := r.Header.Get("If-None-Match"); etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		resp, err := moduleClient.Do(req)
		if err != nil {
			log.Warn("fetch the browser client", "url", src, "error", err)
			writeError(w, http.StatusServiceUnavailable, "unavailable", "the workflow engine is unavailable; try again later")
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNotModified {
			log.Warn("fetch the browser client", "url", src, "status", resp.Status)
			writeError(w, http.StatusBadGateway, "bad_gateway", "the workflow engine did not serve its browser client")
			return
		}
		h := w.Header()
		for _, name := range []string{"Content-Type", "Cache-Control", "ETag"} {
			if v := resp.Header.Get(name); v != "" {
				h.Set(name, v)
			}
		}
		h.Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	}
}
