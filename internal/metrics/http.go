package metrics

import (
	"net/http"
	"strconv"
	"strings"
)

// Middleware counts the requests next serves by route pattern and status,
// counts the Server-Sent Events responses open, and tags each request's
// context with its transport (WithTransport): rpc for paths under one of
// rpcPrefixes (the Connect services), sse otherwise (the HTTP API's streams
// are its only subscriptions).
//
// next must be the ServeMux that routes the request: the pattern is read
// from the request after it served it.
func (m *Metrics) Middleware(next http.Handler, rpcPrefixes ...string) http.Handler {
	if m == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		transport := TransportSSE
		for _, p := range rpcPrefixes {
			if strings.HasPrefix(r.URL.Path, p) {
				transport = TransportRPC
				break
			}
		}
		r = r.WithContext(WithTransport(r.Context(), transport))
		rw := &responseWriter{ResponseWriter: w, m: m}
		defer func() {
			if rw.sse {
				m.sseConnections.Dec()
			}
			route := r.Pattern
			if route == "" {
				route = "unmatched"
			}
			code := rw.code
			if code == 0 {
				code = http.StatusOK
			}
			m.httpRequests.WithLabelValues(route, strconv.Itoa(code)).Inc()
		}()
		next.ServeHTTP(rw, r)
	})
}

// responseWriter records the status of a response and whether it is an
// event stream. It unwraps for http.ResponseController and flushes, which
// streaming handlers (SSE, Connect) need.
type responseWriter struct {
	http.ResponseWriter
	m    *Metrics
	code int
	sse  bool
}

func (w *responseWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
		if code == http.StatusOK && strings.HasPrefix(w.Header().Get("Content-Type"), "text/event-stream") {
			w.sse = true
			w.m.sseConnections.Inc()
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

func (w *responseWriter) Flush() {
	if w.code == 0 {
		w.WriteHeader(http.StatusOK)
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
