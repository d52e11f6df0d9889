package sse_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/sse"
)

// ExampleStream shows what a browser's EventSource does after a dropped
// connection: it connects again with the id of the last message it got as
// Last-Event-ID, and Stream resumes right after that event. This example
// is a snippet of docs/streaming.md (see docs_test.go at the module root).
func ExampleStream() {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /message/{id}", func(w http.ResponseWriter, r *http.Request) {
		err := sse.Stream(w, r, client, r.PathValue("id"), sse.WithTypes(runnel.EventStepStream))
		if err != nil {
			log.Printf("stream message %s: %v", r.PathValue("id"), err)
		}
	})
	backend := httptest.NewServer(mux)
	defer backend.Close()
	runID, err := client.Admin().RunWorkflow(context.Background(), "demo-text", map[string]int{"chunks": 4})
	if err != nil {
		log.Fatal(err)
	}

	// follow reads the stream as EventSource does, and hangs up after
	// max messages; it returns the id of the last one.
	follow := func(lastEventID string, max int) string {
		req, err := http.NewRequest("GET", backend.URL+"/message/"+runID, nil)
		if err != nil {
			log.Fatal(err)
		}
		if lastEventID != "" {
			req.Header.Set("Last-Event-ID", lastEventID)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		defer resp.Body.Close() // hang up
		sc := bufio.NewScanner(resp.Body)
		for n := 0; n < max && sc.Scan(); {
			line := sc.Text()
			if id, ok := strings.CutPrefix(line, "id: "); ok {
				lastEventID = id
			}
			if line == "event: "+sse.EndEvent {
				fmt.Println("end")
			}
			if data, ok := strings.CutPrefix(line, "data: "); ok {
				var ev struct{ Payload *string }
				if err := json.Unmarshal([]byte(data), &ev); err != nil {
					log.Fatal(err)
				}
				if ev.Payload != nil {
					fmt.Printf("%q\n", *ev.Payload)
				}
				n++
			}
		}
		return lastEventID
	}
	last := follow("", 2)
	fmt.Println("-- connection dropped; EventSource reconnects --")
	follow(last, 10)
	// Output:
	// "Runnel "
	// "streams "
	// -- connection dropped; EventSource reconnects --
	// "every "
	// "token "
	// end
}
