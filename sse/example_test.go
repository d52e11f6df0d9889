package sse_test

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/demo"
	"github.com/runnel-dev/runnel/internal/server"
	"github.com/runnel-dev/runnel/sse"
)

// client is the *runnel.Client the examples use. In your backend it is the
// one you create with runnel.NewClient(); here TestMain connects it to an
// in-process engine with a demo worker.
var client *runnel.Client

// Example proxies a run's stream to a browser, like the seed's
// StreamingResponse endpoint: GET /message/{id} streams the run's text
// chunks and an `end` message, and the page follows it with
//
//	const es = new EventSource("/message/" + id);
//	es.addEventListener("step.stream", e => out.textContent += JSON.parse(e.data).payload);
//	es.addEventListener("end", () => es.close());
func Example() {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /message/{id}", func(w http.ResponseWriter, r *http.Request) {
		// Only what the page shows; Last-Event-ID resumes by itself.
		err := sse.Stream(w, r, client, r.PathValue("id"),
			sse.WithTypes(runnel.EventStepStream, runnel.EventRunCompleted, runnel.EventRunFailed))
		if err != nil {
			log.Printf("stream message %s: %v", r.PathValue("id"), err)
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	// What the page's EventSource receives for a three-chunk message.
	runID, err := client.Admin().RunWorkflow(context.Background(), "demo-text",
		map[string]int{"chunks": 3, "intervalMs": 10})
	if err != nil {
		log.Fatal(err)
	}
	resp, err := http.Get(srv.URL + "/message/" + runID)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	fmt.Println(resp.Header.Get("Content-Type"))
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if name, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
			fmt.Println(name)
		}
	}
	// Output:
	// text/event-stream
	// step.stream
	// step.stream
	// step.stream
	// run.completed
	// end
}

// ExampleWithTransform sends only the text, under an event name of your
// own. The message ids stay the events' positions, so reconnecting still
// resumes exactly.
func ExampleWithTransform() {
	handler := func(w http.ResponseWriter, r *http.Request) {
		_ = sse.Stream(w, r, client, r.PathValue("id"),
			sse.WithTypes(runnel.EventStepStream),
			sse.WithTransform(func(ev runnel.Event) (string, any, bool) {
				return "token", map[string]string{"text": string(ev.Payload)}, true
			}))
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /message/{id}", handler)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	runID, err := client.Admin().RunWorkflow(context.Background(), "demo-text", map[string]int{"chunks": 2})
	if err != nil {
		log.Fatal(err)
	}
	resp, err := http.Get(srv.URL + "/message/" + runID)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if line := sc.Text(); line != "" && !strings.HasPrefix(line, "id: ") {
			fmt.Println(strings.ReplaceAll(line, runID, "RUN_ID"))
		}
	}
	// Output:
	// event: token
	// data: {"text":"Runnel "}
	// event: token
	// data: {"text":"streams "}
	// event: end
	// data: {"runId":"RUN_ID"}
}

// TestMain runs an engine with the demo workflows for the examples (the
// tests start their own, see internal/testengine).
func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.fuzzworker"); f != nil && f.Value.String() == "true" {
		// A fuzzing worker process runs no example: no engine needed.
		os.Exit(m.Run())
	}
	os.Exit(withEngine(m))
}

func withEngine(m *testing.M) int {
	dir, err := os.MkdirTemp("", "sse-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv, err := server.Start(context.Background(), server.Config{
		DataDir: dir, Listener: ln, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Stop(ctx)
	}()
	client, err = runnel.NewClient(runnel.WithHost(srv.URL()), runnel.WithToken(srv.AdminToken),
		runnel.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		log.Fatal(err)
	}
	w, err := client.NewWorker("demo")
	if err != nil {
		log.Fatal(err)
	}
	if err := w.Register(demo.Workflows()...); err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	select {
	case <-w.Ready():
	case err := <-done:
		log.Fatalf("demo worker: %v", err)
	}
	return m.Run()
}
