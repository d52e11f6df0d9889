package runnel_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/sse"
)

// The examples in this file are the frontend snippets of docs/streaming.md
// (see docs_test.go).

// Example_backend serves a run's stream to a browser from your own backend
// with the sse package: the endpoint a page's EventSource connects to.
func Example_backend() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := runnel.NewClient()
	if err != nil {
		log.Fatal(err)
	}
	wf := runnel.NewWorkflow("guide-chat").
		Step("reply", func(ctx runnel.Context) (any, error) {
			for _, tok := range []string{"Hi", " there", "!"} {
				if err := ctx.PutStream([]byte(tok)); err != nil {
					return nil, err
				}
			}
			return map[string]string{"reply": "Hi there!"}, nil
		})
	if err := startWorker(ctx, c, wf); err != nil {
		log.Fatal(err)
	}

	mux := http.NewServeMux()
	// POST /message starts a run; its id is the message id.
	mux.HandleFunc("POST /message", func(w http.ResponseWriter, r *http.Request) {
		runID, err := c.Admin().RunWorkflow(r.Context(), "guide-chat", nil)
		if err != nil {
			http.Error(w, "could not start", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, runID)
	})
	// GET /message/{id} streams it as Server-Sent Events. A reconnecting
	// EventSource sends Last-Event-ID, and sse.Stream resumes after it.
	mux.HandleFunc("GET /message/{id}", func(w http.ResponseWriter, r *http.Request) {
		err := sse.Stream(w, r, c, r.PathValue("id"),
			sse.WithTypes(runnel.EventStepStream, runnel.EventRunCompleted),
			sse.WithTransform(func(ev runnel.Event) (string, any, bool) {
				if ev.Type == runnel.EventRunCompleted {
					return "done", json.RawMessage(ev.Data), true
				}
				return "token", map[string]string{"text": string(ev.Payload)}, true
			}))
		if err != nil {
			log.Printf("stream message %s: %v", r.PathValue("id"), err)
		}
	})
	backend := httptest.NewServer(mux)
	defer backend.Close()

	// What the page does: POST, then follow the stream.
	resp, err := http.Post(backend.URL+"/message", "text/plain", nil)
	if err != nil {
		log.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		log.Fatal(err)
	}
	id := string(body)
	stream, err := http.Get(backend.URL + "/message/" + id)
	if err != nil {
		log.Fatal(err)
	}
	defer stream.Body.Close()
	sc := bufio.NewScanner(stream.Body)
	for sc.Scan() {
		// What the page gets, less what differs from run to run: the
		// positions (id:) and the run id in the data of `end`.
		if line := sc.Text(); !strings.HasPrefix(line, "id:") && !strings.Contains(line, id) {
			fmt.Println(line)
		}
	}
	// Output:
	// event: token
	// data: {"text":"Hi"}
	//
	// event: token
	// data: {"text":" there"}
	//
	// event: token
	// data: {"text":"!"}
	//
	// event: done
	// data: {"output":{"reply":{"reply":"Hi there!"}}}
	//
	// event: end
	//
}

// Example_browserToken lets a page read a run straight from the engine:
// the backend mints a short-lived, read-only browser token for the run,
// and the page opens the engine's SSE endpoint with it.
func Example_browserToken() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := runnel.NewClient()
	if err != nil {
		log.Fatal(err)
	}
	wf := runnel.NewWorkflow("guide-direct").
		Step("reply", func(ctx runnel.Context) (any, error) {
			return nil, ctx.PutStream([]byte("straight from the engine"))
		})
	if err := startWorker(ctx, c, wf); err != nil {
		log.Fatal(err)
	}
	runID, err := c.Admin().RunWorkflow(ctx, "guide-direct", nil)
	if err != nil {
		log.Fatal(err)
	}

	// On the backend, with its API token: a browser token for this run only.
	body := strings.NewReader(`{"runId": "` + runID + `", "ttl": "10m"}`)
	req, err := http.NewRequestWithContext(ctx, "POST", c.Host()+"/api/v1/tokens", body)
	if err != nil {
		log.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+os.Getenv("RUNNEL_TOKEN"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	var minted struct{ Token string }
	err = json.NewDecoder(resp.Body).Decode(&minted)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusCreated {
		log.Fatalf("mint browser token: %s %v", resp.Status, err)
	}

	// The page gets runID and the token, and opens
	//   new EventSource(`${engine}/api/v1/runs/${runID}/stream?token=${token}`)
	// Here Go reads that stream as the browser would.
	streamURL := c.Host() + "/api/v1/runs/" + runID + "/stream?types=step.stream&token=" + url.QueryEscape(minted.Token)
	stream, err := http.Get(streamURL)
	if err != nil {
		log.Fatal(err)
	}
	defer stream.Body.Close()
	sc := bufio.NewScanner(stream.Body)
	for sc.Scan() {
		if name, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
			fmt.Println(name)
		}
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			var ev struct{ Payload string }
			if err := json.Unmarshal([]byte(data), &ev); err != nil {
				log.Fatal(err)
			}
			if ev.Payload != "" {
				fmt.Println("  " + ev.Payload)
			}
		}
	}

	// The token can read nothing else, and change nothing.
	cancelURL := c.Host() + "/api/v1/runs/" + runID + "/cancel?token=" + url.QueryEscape(minted.Token)
	refused, err := http.Post(cancelURL, "application/json", nil)
	if err != nil {
		log.Fatal(err)
	}
	refused.Body.Close()
	fmt.Println("cancel with the browser token:", refused.Status)
	// Output:
	// step.stream
	//   straight from the engine
	// end
	// cancel with the browser token: 403 Forbidden
}
