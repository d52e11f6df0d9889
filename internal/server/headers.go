package server

import "net/http"

// withSecurityHeaders sets the headers every response of the node carries,
// whatever serves it (API, SSE, RPC, dashboard, runnel.js, metrics, errors):
//
//   - X-Content-Type-Options: nosniff, so a browser never runs JSON or text
//     as a script or page;
//   - X-Frame-Options: DENY and CSP frame-ancestors 'none', so no other site
//     can frame the dashboard or an API response (clickjacking); the
//     dashboard replaces the CSP with its full policy, which keeps
//     frame-ancestors 'none';
//   - Referrer-Policy: no-referrer, so a ?token= in a URL never leaves in a
//     Referer header.
//
// They are set before the handler runs, so handlers may override them.
func withSecurityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy", "frame-ancestors 'none'")
		h.Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}
