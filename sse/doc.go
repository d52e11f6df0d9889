// Package sse serves a Runnel run's event stream as Server-Sent Events from
// your own HTTP handler: the Go version of the "Streaming Response"
// endpoint through which a backend proxies a run to its frontend.
//
//	http.HandleFunc("GET /message/{id}", func(w http.ResponseWriter, r *http.Request) {
//		if err := sse.Stream(w, r, client, r.PathValue("id")); err != nil {
//			log.Printf("stream %s: %v", r.PathValue("id"), err)
//		}
//	})
//
// The frames are the ones the engine's own SSE endpoint sends:
//
//	id: <position>
//	event: <type>
//	data: <one line of JSON>
//
// so a browser's EventSource reconnects by itself after a dropped connection
// with a Last-Event-ID header that [Stream] resumes after: the page gets
// every event exactly once, in order. After the run's terminal event comes
// one `event: end` message; close the EventSource when it arrives, or the
// browser reconnects and gets `end` again.
//
// Options shape what is sent: [WithTypes] asks the engine for some event
// types only, [WithFilter] drops events in your backend, [WithTransform]
// renames events and replaces their data (the message ids stay positions,
// so resuming still works), [WithHeartbeat] and [WithRetry] tune the
// connection. [Data] is the default data object, for transforms to extend.
//
// For a page that reads the engine directly instead, with a read-only
// browser token, see docs/streaming.md and docs/http-api.md.
package sse
