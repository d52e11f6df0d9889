// Command backend-sse is a web backend that proxies runs to its own
// frontend with Server-Sent Events: the Go version of the seed's "Consuming
// Streams on Frontend" example.
//
//   - POST /message starts demo-text, with the optional input {"chunks": N,
//     "intervalMs": M}, and answers {"messageId": "<run id>"}.
//   - GET /message/{id} streams that run with package sse: the page's
//     EventSource gets every text chunk live, and after a dropped
//     connection reconnects by itself and resumes after the last chunk it
//     got (Last-Event-ID), with no chunk lost or repeated.
//   - GET / is a page that starts a message and shows its stream, with
//     the engine's browser client, runnel.js, which this backend re-serves
//     at GET /runnel.js (the engine serves it at /sdk/runnel.js).
//
// Run it next to an engine with the demo worker:
//
//	go run ./cmd/runnel dev                  # in one terminal
//	go run ./examples/backend-sse            # in another, then open http://127.0.0.1:8090
package main

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"connectrpc.com/connect"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/sse"
)

// static holds the page: plain HTML and JavaScript, nothing fetched from
// anywhere else.
//
//go:embed static
var static embed.FS

// Limits of POST /message, so that one request cannot keep a worker busy
// for hours.
const (
	defaultChunks     = 20
	defaultIntervalMs = 50
	maxChunks         = 1000
	maxIntervalMs     = 10_000
	maxBodyBytes      = 4 << 10
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8090", "address to listen on")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *addr); err != nil {
		fmt.Fprintln(os.Stderr, "backend-sse:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, addr string) error {
	c, err := newClient()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "backend-sse: open http://%s/ (engine %s)\n", ln.Addr(), c.Host())
	return serve(ctx, ln, newHandler(c, slog.Default()))
}

// newClient connects to RUNNEL_HOST with RUNNEL_TOKEN, or, next to a
// `runnel dev` started in the repository root, with its admin token.
func newClient() (*runnel.Client, error) {
	if os.Getenv("RUNNEL_TOKEN") == "" {
		if b, err := os.ReadFile("runnel-data/admin.token"); err == nil {
			return runnel.NewClient(runnel.WithToken(strings.TrimSpace(string(b))))
		}
	}
	return runnel.NewClient()
}

// serve serves h on ln until ctx ends. Then it ends the open streams (their
// browsers reconnect, to this server's successor) and shuts down.
func serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	// Requests' contexts derive from base, so cancelling it ends the SSE
	// streams, which Shutdown would otherwise wait for until its deadline.
	base, cancelBase := context.WithCancel(context.Background())
	defer cancelBase()
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		// Idle keep-alive connections are closed; SSE streams are not idle.
		IdleTimeout: 2 * time.Minute,
		BaseContext: func(net.Listener) context.Context { return base },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	cancelBase()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		_ = srv.Close()
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// newHandler returns the backend's routes.
func newHandler(c *runnel.Client, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", serveFile("static/index.html", "text/html; charset=utf-8"))
	mux.HandleFunc("GET /app.js", serveFile("static/app.js", "text/javascript; charset=utf-8"))
	mux.HandleFunc("GET /runnel.js", serveModule(c, log))
	mux.HandleFunc("POST /message", startMessage(c, log))
	mux.HandleFunc("GET /message/{id}", streamMessage(c, log))
	return mux
}

// serveFile serves an embedded file. The policy allows only this origin:
// the page can load its script and open its streams, nothing else.
func serveFile(name, contentType string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, err := static.ReadFile(name)
		if err != nil {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		h := w.Header()
		h.Set("Content-Type", contentType)
		h.Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-cache")
		_, _ = w.Write(b)
	}
}

// messageInput is the body of POST /message; missing fields take defaults.
type messageInput struct {
	Chunks     *int `json:"chunks"`
	IntervalMs *int `json:"intervalMs"`
}

// startMessage starts demo-text and answers with its run id as the message
// id. A real backend would store the message and map its id to the run.
func startMessage(c *runnel.Client, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		in := messageInput{}
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil && !errors.Is(err, io.EOF) { // an empty body is fine
			if tooBig := (*http.MaxBytesError)(nil); errors.As(err, &tooBig) {
				writeError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("body over %d bytes", maxBodyBytes))
				return
			}
			writeError(w, http.StatusBadRequest, "invalid_argument", "invalid JSON body: "+err.Error())
			return
		}
		chunks, interval := defaultChunks, defaultIntervalMs
		if in.Chunks != nil {
			chunks = *in.Chunks
		}
		if in.IntervalMs != nil {
			interval = *in.IntervalMs
		}
		if chunks < 1 || chunks > maxChunks {
			writeError(w, http.StatusBadRequest, "invalid_argument", fmt.Sprintf("chunks must be between 1 and %d", maxChunks))
			return
		}
		if interval < 0 || interval > maxIntervalMs {
			writeError(w, http.StatusBadRequest, "invalid_argument", fmt.Sprintf("intervalMs must be between 0 and %d", maxIntervalMs))
			return
		}
		runID, err := c.Admin().RunWorkflow(r.Context(), "demo-text", map[string]int{"chunks": chunks, "intervalMs": interval})
		if err != nil {
			log.Error("start demo-text", "error", err)
			if connect.CodeOf(err) == connect.CodeUnavailable {
				writeError(w, http.StatusServiceUnavailable, "unavailable", "the workflow engine is unavailable; try again later")
			} else {
				writeError(w, http.StatusBadGateway, "bad_gateway", "the workflow engine could not start the message")
			}
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]string{"messageId": runID})
	}
}

// pageTypes are the events the page shows: the text, and how the run ends.
var pageTypes = []runnel.EventType{
	runnel.EventStepStream,
	runnel.EventRunCompleted, runnel.EventRunFailed, runnel.EventRunCancelled, runnel.EventRunTimedOut,
}

// streamMessage streams a message's run to the page, like the seed's
// StreamingResponse endpoint. The transform adds the message id to each
// event's data, as the seed's generator does.
func streamMessage(c *runnel.Client, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		messageID := r.PathValue("id")
		err := sse.Stream(w, r, c, messageID,
			sse.WithTypes(pageTypes...),
			sse.WithTransform(func(ev runnel.Event) (string, any, bool) {
				data := sse.Data(ev)
				data["messageId"] = messageID
				return string(ev.Type), data, true
			}),
			// Reconnect a second after a drop, instead of the browsers'
			// usual three.
			sse.WithRetry(time.Second),
		)
		if err != nil {
			log.Warn("stream message", "message_id", messageID, "error", err)
		}
	}
}

// writeError answers with {"error": {"code", "message"}}, the shape the
// engine's API and package sse use.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}
