package metrics

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
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
		rw := &responseWriter{ResponseWriter: w, m: m, req: r}
		defer func() {
			if rw.detached {
				return // counted when the stream ends
			}
			if rw.sse {
				m.sseConnections.Dec()
			}
			m.countRequest(r.Pattern, rw.code)
		}()
		next.ServeHTTP(rw, r)
	})
}

// countRequest counts a request that ended with code (0: 200), by the
// route pattern the ServeMux matched.
func (m *Metrics) countRequest(route string, code int) {
	if route == "" {
		route = "unmatched"
	}
	if code == 0 {
		code = http.StatusOK
	}
	m.httpRequests.WithLabelValues(route, strconv.Itoa(code)).Inc()
}

// responseWriter records the status of a response and whether it is an
// event stream. It unwraps for http.ResponseController and flushes, which
// streaming handlers (SSE, Connect) need.
type responseWriter struct {
	http.ResponseWriter
	m        *Metrics
	req      *http.Request
	code     int
	sse      bool
	detached bool
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

// Detach is called by a handler that takes its connection over from
// net/http to stream Server-Sent Events after it returns: the stream
// counts as an open SSE connection, and the request is counted (as a
// 200), when the returned function is called at the stream's end, not
// when the handler returns.
func (w *responseWriter) Detach() (ended func()) {
	w.detached = true
	if !w.sse {
		w.m.sseConnections.Inc()
	}
	// Only what counting needs: holding w would hold net/http's
	// connection and its buffers for as long as the stream lasts.
	m, route := w.m, w.req.Pattern
	return sync.OnceFunc(func() {
		m.sseConnections.Dec()
		m.countRequest(route, http.StatusOK)
	})
}
