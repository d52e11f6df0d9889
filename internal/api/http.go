package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/runnel-dev/runnel/internal/apierr"
	"github.com/runnel-dev/runnel/internal/engine"
)

// MaxRequestBody bounds a JSON request body: a run input of up to 4 MiB
// plus its envelope.
const MaxRequestBody = engine.MaxInputSize + 64<<10

// HTTPConfig configures the JSON API and SSE endpoints.
type HTTPConfig struct {
	// CORSOrigins are the browser origins allowed to call the API ("*" for
	// any). None by default.
	CORSOrigins []string
	// WriteTimeout bounds each write of an SSE stream: a client that takes
	// nothing for this long is dropped (default DefaultWriteTimeout).
	WriteTimeout time.Duration
}

// DefaultWriteTimeout is HTTPConfig.WriteTimeout's default.
const DefaultWriteTimeout = 30 * time.Second

// HTTP serves the JSON API under /api/v1 and its SSE streams, for backends
// without the Go SDK and for browsers. It is a thin layer: decode, call the
// engine, encode; errors are mapped to statuses once, in writeError.
type HTTP struct {
	engine *engine.Engine
	log    *slog.Logger
	cfg    HTTPConfig
	frames *frameCache // SSE frames of recent events, shared by all streams
	// streams are the SSE streams served past their handlers
	// (sse_detach.go).
	streams detachedStreams
}

// NewHTTP returns the HTTP API over e.
func NewHTTP(e *engine.Engine, log *slog.Logger, cfg HTTPConfig) *HTTP {
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	return &HTTP{engine: e, log: log, cfg: cfg, frames: newFrameCache()}
}

// Mount registers the routes on mux.
func (h *HTTP) Mount(mux *http.ServeMux) {
	route := func(pattern string, fn func(http.ResponseWriter, *http.Request, engine.Principal)) {
		mux.Handle(pattern, h.cors(h.authenticated(fn)))
	}
	route("POST /api/v1/workflows/{name}/runs", h.triggerRun)
	route("GET /api/v1/workflows", h.listWorkflows)
	route("GET /api/v1/runs", h.listRuns)
	route("GET /api/v1/runs/{runId}", h.getRun)
	route("POST /api/v1/runs/{runId}/cancel", h.cancelRun)
	route("GET /api/v1/runs/{runId}/stream", h.streamRun)
	route("POST /api/v1/tokens", h.createToken)
	route("POST /api/v1/events", h.pushEvent)
	route("GET /api/v1/stream", h.streamMetadata)
	route("GET /api/v1/streams", h.listStreams)
	route("GET /api/v1/workers", h.listWorkers)
	h.mountDurable(mux)
	// The API's description needs no token (see openapi.go).
	mux.Handle("GET /api/v1/openapi.json", h.cors(http.HandlerFunc(serveOpenAPI)))
	// Preflight requests carry no token.
	mux.Handle("OPTIONS /api/v1/", h.cors(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})))
	// Anything else under the prefix is a JSON 404, not the mux's text one.
	mux.Handle("/api/v1/", h.cors(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.writeError(w, r, apierr.New(apierr.NotFound, "no endpoint %s %s", r.Method, r.URL.Path))
	})))
}

// authenticated resolves the request's token (Authorization header, or
// ?token= for EventSource, which cannot set headers) to a principal. A
// query string that does not parse is refused first (400), so no handler
// acts on a query with pairs silently left out.
func (h *HTTP) authenticated(fn func(http.ResponseWriter, *http.Request, engine.Principal)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, err := parseQuery(r.URL.RawQuery)
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		p, err := h.engine.Authenticate(r.Context(), BearerToken(r.Header, q.Get))
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		fn(w, r, p)
	})
}

// cors applies the configured origins: allowed ones get the CORS headers
// (and preflights an empty 204); others get none, so browsers refuse them.
func (h *HTTP) cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		allowed := origin != "" && (slices.Contains(h.cfg.CORSOrigins, origin) || slices.Contains(h.cfg.CORSOrigins, "*"))
		if origin != "" {
			w.Header().Add("Vary", "Origin")
		}
		if allowed {
			w.Header().Set("Access-Control-Allow-Origin", origin)
			// Retry-After tells a page refused with 429 when to try again.
			w.Header().Set("Access-Control-Expose-Headers", "Content-Type, Retry-After")
		}
		if r.Method == http.MethodOptions {
			if !allowed {
				h.writeError(w, r, apierr.New(apierr.PermissionDenied, "origin %q is not allowed (see --cors-origin)", origin))
				return
			}
			w.Header().Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
			w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Last-Event-ID")
			w.Header().Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// decodeJSON reads a JSON request body into v: at most MaxRequestBody bytes,
// a JSON object (null, which encoding/json takes as "leave v alone", is
// refused), no unknown fields, nothing after the value. The Content-Type is
// not checked (curl -d sends a form type); the body must be JSON whatever
// it says.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRequestBody))
	if err != nil {
		return bodyError(err)
	}
	if bytes.Equal(bytes.TrimSpace(body), []byte("null")) {
		return apierr.New(apierr.InvalidArgument, "request body is null: want a JSON object")
	}
	// encoding/json would quietly turn invalid bytes in a string into
	// U+FFFD: the client's data would be stored changed.
	if !utf8.Valid(body) {
		return apierr.New(apierr.InvalidArgument, "request body is not valid UTF-8 (at byte %d)", invalidUTF8At(body))
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return bodyError(err)
	}
	if dec.More() {
		return apierr.New(apierr.InvalidArgument, "request body holds more than one JSON value")
	}
	return nil
}

// invalidUTF8At returns the offset of the first byte of b that is not
// part of valid UTF-8.
func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return len(b)
}

func bodyError(err error) error {
	var tooBig *http.MaxBytesError
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooBig):
		return &apierr.Error{Code: apierr.ResourceExhausted, Message: fmt.Sprintf("request body exceeds the %d byte limit", tooBig.Limit)}
	case errors.Is(err, context.Canceled):
		return err
	case err.Error() == "EOF":
		return apierr.New(apierr.InvalidArgument, "request body is empty: want a JSON object")
	case errors.As(err, &syntax):
		return apierr.New(apierr.InvalidArgument, "request body is not valid JSON (at byte %d)", syntax.Offset)
	case errors.As(err, &typ):
		return apierr.New(apierr.InvalidArgument, "field %q: want %s, got JSON %s", typ.Field, typ.Type, typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return apierr.New(apierr.InvalidArgument, "unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return apierr.New(apierr.InvalidArgument, "invalid request body: %v", err)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// retryAfterSeconds renders a wait as a Retry-After value: whole seconds,
// rounded up, at least 1.
func retryAfterSeconds(d time.Duration) string {
	return strconv.FormatInt(max(int64((d+time.Second-1)/time.Second), 1), 10)
}

// HTTPStatus maps an error code to an HTTP status (ResourceExhausted with a
// RetryAfter becomes 429 in writeError).
func HTTPStatus(c apierr.Code) int {
	switch c {
	case apierr.InvalidArgument:
		return http.StatusBadRequest
	case apierr.Unauthenticated:
		return http.StatusUnauthorized
	case apierr.PermissionDenied:
		return http.StatusForbidden
	case apierr.NotFound:
		return http.StatusNotFound
	case apierr.AlreadyExists, apierr.FailedPrecondition:
		return http.StatusConflict
	case apierr.ResourceExhausted:
		return http.StatusRequestEntityTooLarge
	case apierr.Unavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// writeError writes {"error": {"code", "message"}} with the fitting status.
// Uncoded errors are internal: logged, shown as a generic message.
func (h *HTTP) writeError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		return // the client left
	}
	err = codeStoreErr(err)
	code := apierr.CodeOf(err)
	if code == apierr.Internal {
		h.log.Error("http request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if code == apierr.Unauthenticated {
		w.Header().Set("WWW-Authenticate", `Bearer realm="runnel"`)
	}
	status := HTTPStatus(code)
	if wait := apierr.RetryAfterOf(err); code == apierr.ResourceExhausted && wait > 0 {
		// A count or rate limit, not a size: the same request may pass later.
		status = http.StatusTooManyRequests
		w.Header().Set("Retry-After", retryAfterSeconds(wait))
	}
	writeJSON(w, status, map[string]any{
		"error": map[string]string{"code": string(code), "message": apierr.Message(err)},
	})
}
