package sse_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/demo"
	"github.com/runnel-dev/runnel/internal/ssewire"
	"github.com/runnel-dev/runnel/internal/testengine"
	"github.com/runnel-dev/runnel/sse"
)

// testTimeout bounds every test's requests: a hang fails the test instead
// of the whole binary.
const testTimeout = 60 * time.Second

// backend is a user's backend: GET /runs/{id} streams a run with sse.Stream.
type backend struct {
	URL  string
	errs chan error // what each sse.Stream call returned
}

func newBackend(t *testing.T, c *runnel.Client, opts ...sse.Option) *backend {
	t.Helper()
	b := &backend{errs: make(chan error, 100)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /runs/{id}", func(w http.ResponseWriter, r *http.Request) {
		b.errs <- sse.Stream(w, r, c, r.PathValue("id"), opts...)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	b.URL = srv.URL
	return b
}

// lastErr returns what the handler's sse.Stream call returned.
func (b *backend) lastErr(t *testing.T) error {
	t.Helper()
	select {
	case err := <-b.errs:
		return err
	case <-time.After(testTimeout):
		t.Fatal("sse.Stream did not return")
		return nil
	}
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// get requests a run's stream with the given extra headers and query.
func (b *backend) get(t *testing.T, runID, query string, header http.Header) *http.Response {
	t.Helper()
	u := b.URL + "/runs/" + runID
	if query != "" {
		u += "?" + query
	}
	req, err := http.NewRequestWithContext(testContext(t), http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// body requests a run's stream and reads it to its end, which comes after
// the run's end; it checks the SSE headers.
func (b *backend) body(t *testing.T, runID, query string, header http.Header) string {
	t.Helper()
	resp := b.get(t, runID, query, header)
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d: %s", resp.StatusCode, msg)
	}
	for k, want := range map[string]string{
		"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
		"Connection": "keep-alive", "X-Accel-Buffering": "no",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read stream: %v (got %q)", err, data)
	}
	if err := b.lastErr(t); err != nil {
		t.Fatalf("sse.Stream returned %v", err)
	}
	return string(data)
}

// frame is one SSE message as it was on the wire.
type frame struct {
	raw, id, event, data string
}

// parseFrames splits a stream into messages and checks the framing byte by
// byte: every message is exactly "id: …\nevent: …\ndata: …\n\n" (end has no
// id; a transform may leave out the event name), one line each, no CR
// anywhere, nothing else.
func parseFrames(t *testing.T, body string) []frame {
	t.Helper()
	if strings.Contains(body, "\r") {
		t.Fatalf("CR in stream: %q", body)
	}
	if !strings.HasSuffix(body, "\n\n") {
		t.Fatalf("stream does not end with a blank line: %q", body)
	}
	var frames []frame
	for _, raw := range strings.SplitAfter(body, "\n\n") {
		if raw == "" {
			continue
		}
		var f frame
		f.raw = raw
		lines := strings.Split(strings.TrimSuffix(raw, "\n\n"), "\n")
		if len(lines) > 0 && strings.HasPrefix(lines[0], "id: ") {
			f.id, lines = strings.TrimPrefix(lines[0], "id: "), lines[1:]
		}
		if len(lines) > 0 && strings.HasPrefix(lines[0], "event: ") {
			f.event, lines = strings.TrimPrefix(lines[0], "event: "), lines[1:]
		}
		if len(lines) != 1 || !strings.HasPrefix(lines[0], "data: ") {
			t.Fatalf("malformed message %q", raw)
		}
		f.data = strings.TrimPrefix(lines[0], "data: ")
		if !json.Valid([]byte(f.data)) {
			t.Fatalf("data is not one line of JSON: %q", raw)
		}
		frames = append(frames, f)
	}
	return frames
}

func decode(t *testing.T, f frame) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(f.data), &m); err != nil {
		t.Fatalf("data of %q: %v", f.raw, err)
	}
	return m
}

// runEvents returns every event of a finished run, read with the SDK.
func runEvents(t *testing.T, c *runnel.Client, runID string) []runnel.Event {
	t.Helper()
	var evs []runnel.Event
	for ev, err := range c.Listener().Stream(testContext(t), runID) {
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	return evs
}

// wireFrames is what the stream of these events must be, byte for byte:
// each event framed by ssewire, then the end message.
func wireFrames(t *testing.T, runID string, evs []runnel.Event) string {
	t.Helper()
	var b bytes.Buffer
	for _, ev := range evs {
		err := ssewire.Write(&b, ssewire.Event{
			Position: string(ev.Position), RunID: ev.RunID, Workflow: ev.Workflow, Type: string(ev.Type),
			StepRunID: ev.StepRunID, Step: ev.Step, Attempt: ev.Attempt, Payload: ev.Payload, Data: ev.Data, Time: ev.Time,
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := ssewire.WriteEnd(&b, runID); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func startRun(t *testing.T, c *runnel.Client, workflow string, input any) string {
	t.Helper()
	runID, err := c.Admin().RunWorkflow(testContext(t), workflow, input)
	if err != nil {
		t.Fatal(err)
	}
	return runID
}

// TestStreamFramesDemoText follows a live demo-text run: the stream is, byte
// for byte, each event framed with its position as id and its type as
// event name, the chunks in order, the terminal event, then `event: end`.
func TestStreamFramesDemoText(t *testing.T) {
	t.Parallel()
	e := testengine.StartWithDemoWorker(t)
	b := newBackend(t, e.Client)
	const chunks = 6
	runID := startRun(t, e.Client, demo.Text, map[string]int{"chunks": chunks, "intervalMs": 5})
	body := b.body(t, runID, "", nil)

	if want := wireFrames(t, runID, runEvents(t, e.Client, runID)); body != want {
		t.Fatalf("stream\n%s\nwant\n%s", body, want)
	}
	frames := parseFrames(t, body)
	var text strings.Builder
	var types []string
	for i, f := range frames {
		types = append(types, f.event)
		if f.event == sse.EndEvent {
			if i != len(frames)-1 || f.id != "" || f.data != `{"runId":"`+runID+`"}` {
				t.Fatalf("end message %d of %d: %q", i, len(frames), f.raw)
			}
			continue
		}
		m := decode(t, f)
		if f.id == "" || m["type"] != f.event || m["runId"] != runID || m["workflow"] != demo.Text {
			t.Fatalf("message %q", f.raw)
		}
		if i > 0 && f.id == frames[i-1].id {
			t.Fatalf("repeated id %q", f.id)
		}
		if f.event == string(runnel.EventStepStream) {
			if m["step"] != "generate" || m["stepRunId"] == "" || m["attempt"] != 1.0 || m["encoding"] != nil {
				t.Fatalf("stream message %q", f.raw)
			}
			text.WriteString(m["payload"].(string))
		}
	}
	if text.String() != demo.TextOutput(chunks) {
		t.Fatalf("streamed text %q, want %q", text.String(), demo.TextOutput(chunks))
	}
	if n := len(types); n < 2 || types[n-2] != string(runnel.EventRunCompleted) {
		t.Fatalf("types %v: want run.completed, then end", types)
	}
}

// TestStreamResumes: after any message, Last-Event-ID (or ?after=) gives
// exactly the rest of the stream; the header wins over the query, as it is
// what EventSource sends when it reconnects.
func TestStreamResumes(t *testing.T) {
	t.Parallel()
	e := testengine.StartWithDemoWorker(t)
	b := newBackend(t, e.Client)
	runID := startRun(t, e.Client, demo.Text, map[string]int{"chunks": 4, "intervalMs": 0})
	full := b.body(t, runID, "", nil)
	frames := parseFrames(t, full)
	rest := func(i int) string { // the stream after message i
		var s strings.Builder
		for _, f := range frames[i+1:] {
			s.WriteString(f.raw)
		}
		return s.String()
	}
	for i, f := range frames[:len(frames)-1] {
		if got := b.body(t, runID, "", http.Header{"Last-Event-Id": {f.id}}); got != rest(i) {
			t.Fatalf("Last-Event-ID %s (message %d): got\n%s\nwant\n%s", f.id, i, got, rest(i))
		}
	}
	mid := len(frames) / 2
	if got := b.body(t, runID, "after="+frames[mid].id, nil); got != rest(mid) {
		t.Fatalf("?after=%s: got\n%s\nwant\n%s", frames[mid].id, got, rest(mid))
	}
	got := b.body(t, runID, "after="+frames[0].id, http.Header{"Last-Event-Id": {frames[mid].id}})
	if got != rest(mid) {
		t.Fatalf("Last-Event-ID did not win over ?after=: got\n%s", got)
	}
}

// TestStreamResumesLive cuts a live stream after a few chunks and resumes
// it with Last-Event-ID while the run goes on: the two parts together are
// the whole stream, each event once.
func TestStreamResumesLive(t *testing.T) {
	t.Parallel()
	e := testengine.StartWithDemoWorker(t)
	b := newBackend(t, e.Client)
	const chunks = 30
	runID := startRun(t, e.Client, demo.Text, map[string]int{"chunks": chunks, "intervalMs": 20})
	resp := b.get(t, runID, "", nil)
	r := bufio.NewReader(resp.Body)
	var first strings.Builder
	var lastID string
	for streamed := 0; streamed < 3; {
		msg := readMessage(t, r)
		first.WriteString(msg)
		f := parseFrames(t, msg)[0]
		lastID = f.id
		if f.event == string(runnel.EventStepStream) {
			streamed++
		}
	}
	resp.Body.Close() // the client goes away mid-stream
	if err := b.lastErr(t); err != nil {
		t.Fatalf("sse.Stream returned %v when the client left, want nil", err)
	}
	second := b.body(t, runID, "", http.Header{"Last-Event-Id": {lastID}})
	if got, want := first.String()+second, wireFrames(t, runID, runEvents(t, e.Client, runID)); got != want {
		t.Fatalf("cut and resumed stream\n%s\nwant\n%s", got, want)
	}
}

// readMessage reads one message (up to and including its blank line).
func readMessage(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	var msg strings.Builder
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read stream: %v (after %q)", err, msg.String())
		}
		msg.WriteString(line)
		if line == "\n" {
			return msg.String()
		}
	}
}

// TestStreamTransformAndFilter: types, filters and a transform shape the
// messages, while ids stay positions, so resuming after a transformed
// message gives exactly the rest.
func TestStreamTransformAndFilter(t *testing.T) {
	t.Parallel()
	e := testengine.StartWithDemoWorker(t)
	type chunk struct {
		Text      string `json:"text"`
		MessageID string `json:"messageId"`
	}
	b := newBackend(t, e.Client,
		sse.WithTypes(runnel.EventStepStream, runnel.EventStepCompleted),
		// Drop the third word…
		sse.WithFilter(func(ev runnel.Event) bool { return string(ev.Payload) != demo.TextChunk(2) }),
		sse.WithTransform(func(ev runnel.Event) (string, any, bool) {
			if ev.Type == runnel.EventStepCompleted {
				// …and pass the step's output on as is, like the seed.
				d := sse.Data(ev)
				d["messageId"] = ev.RunID
				return "done", d, true
			}
			return "", chunk{Text: string(ev.Payload), MessageID: ev.RunID}, true
		}),
	)
	const chunks = 5
	runID := startRun(t, e.Client, demo.Text, map[string]int{"chunks": chunks, "intervalMs": 0})
	frames := parseFrames(t, b.body(t, runID, "", nil))

	var want []string
	for _, ev := range runEvents(t, e.Client, runID) {
		if ev.Type == runnel.EventStepStream && string(ev.Payload) != demo.TextChunk(2) || ev.Type == runnel.EventStepCompleted {
			want = append(want, string(ev.Position))
		}
	}
	if len(frames) != len(want)+1 {
		t.Fatalf("%d messages, want %d: %v", len(frames), len(want)+1, frames)
	}
	for i, f := range frames[:len(want)] {
		if f.id != want[i] {
			t.Fatalf("message %d has id %q, want the position %q", i, f.id, want[i])
		}
	}
	for i, f := range frames[:chunks-1] {
		var c chunk
		if err := json.Unmarshal([]byte(f.data), &c); err != nil || f.event != "" || c.MessageID != runID {
			t.Fatalf("chunk message %q: %v", f.raw, err)
		}
		wantChunk := demo.TextChunk(i)
		if i >= 2 {
			wantChunk = demo.TextChunk(i + 1)
		}
		if c.Text != wantChunk {
			t.Fatalf("chunk %d: %q, want %q", i, c.Text, wantChunk)
		}
	}
	done := decode(t, frames[chunks-1])
	if frames[chunks-1].event != "done" || done["messageId"] != runID || done["output"] == nil {
		t.Fatalf("step.completed message %q", frames[chunks-1].raw)
	}
	if end := frames[len(frames)-1]; end.event != sse.EndEvent {
		t.Fatalf("last message %q, want end (the terminal event is filtered out, the end is not)", end.raw)
	}

	// Resume after the second transformed chunk.
	rest := b.body(t, runID, "", http.Header{"Last-Event-Id": {frames[1].id}})
	var wantRest strings.Builder
	for _, f := range frames[2:] {
		wantRest.WriteString(f.raw)
	}
	if rest != wantRest.String() {
		t.Fatalf("resumed\n%s\nwant\n%s", rest, wantRest.String())
	}
}

// TestStreamTransformErrors: a transform whose event name would break the
// framing ends the stream with an error instead.
func TestStreamTransformErrors(t *testing.T) {
	t.Parallel()
	e := testengine.StartWithDemoWorker(t)
	b := newBackend(t, e.Client, sse.WithTransform(func(ev runnel.Event) (string, any, bool) {
		return "x\ny", 1, true
	}))
	runID := startRun(t, e.Client, demo.Text, map[string]int{"chunks": 1})
	resp := b.get(t, runID, "", nil)
	body, _ := io.ReadAll(resp.Body)
	if err := b.lastErr(t); err == nil {
		t.Fatal("no error for an event name with a line break")
	}
	if strings.Contains(string(body), "x\ny") {
		t.Fatalf("broken framing sent: %q", body)
	}
}

// TestStreamBinaryPayload: a payload that is not UTF-8 arrives as base64.
func TestStreamBinaryPayload(t *testing.T) {
	t.Parallel()
	e := testengine.StartWithDemoWorker(t)
	b := newBackend(t, e.Client, sse.WithTypes(runnel.EventStepStream))
	const n = 3000
	runID := startRun(t, e.Client, demo.File, map[string]int{"bytes": n})
	frames := parseFrames(t, b.body(t, runID, "", nil))
	if len(frames) != 2 || frames[1].event != sse.EndEvent {
		t.Fatalf("messages %v: want one step.stream and end", frames)
	}
	m := decode(t, frames[0])
	if m["encoding"] != "base64" {
		t.Fatalf("encoding %v, want base64", m["encoding"])
	}
	got, err := base64.StdEncoding.DecodeString(m["payload"].(string))
	if err != nil || !bytes.Equal(got, demo.FilePayload(n)) {
		t.Fatalf("payload decodes to %d bytes (%v), want demo.FilePayload(%d)", len(got), err, n)
	}
}

// TestStreamPayloadLineBreaks: whatever a step streams (line breaks, CRs,
// text that looks like SSE fields) stays inside one data line.
func TestStreamPayloadLineBreaks(t *testing.T) {
	t.Parallel()
	e := testengine.StartWithDemoWorker(t)
	payloads := []string{
		"a\nb", "c\r\nd", "\r", "\n\nevent: end\ndata: {}\n\n", "id: 1\r\rretry: 1\n",
		"\u2028\u2029\u0085", "\x00", "\xff\n\r\xfe", ": comment\n\n",
	}
	const wf = "sse-test-lines"
	w, err := e.Client.NewWorker("lines")
	if err != nil {
		t.Fatal(err)
	}
	err = w.Register(runnel.NewWorkflow(wf).Step("put", func(ctx runnel.Context) (any, error) {
		for _, p := range payloads {
			if err := ctx.PutStream([]byte(p)); err != nil {
				return nil, err
			}
		}
		return map[string]string{"multi": "line\r\nvalue"}, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	<-w.Ready()

	b := newBackend(t, e.Client)
	runID := startRun(t, e.Client, wf, nil)
	body := b.body(t, runID, "", nil)
	var got []string
	var types []string
	for _, f := range parseFrames(t, body) {
		types = append(types, f.event)
		if f.event != string(runnel.EventStepStream) {
			continue
		}
		m := decode(t, f)
		p := m["payload"].(string)
		if m["encoding"] == "base64" {
			raw, err := base64.StdEncoding.DecodeString(p)
			if err != nil {
				t.Fatal(err)
			}
			p = string(raw)
		}
		got = append(got, p)
	}
	if strings.Join(got, "|") != strings.Join(payloads, "|") || len(got) != len(payloads) {
		t.Fatalf("payloads %q, want %q", got, payloads)
	}
	if n := len(types); types[n-2] != string(runnel.EventRunCompleted) || types[n-1] != sse.EndEvent {
		t.Fatalf("types %v", types)
	}
}

// TestStreamHeartbeat: an idle stream gets comment lines, and Stream
// returns nil when the client goes away.
func TestStreamHeartbeat(t *testing.T) {
	t.Parallel()
	e := testengine.StartWithDemoWorker(t)
	b := newBackend(t, e.Client, sse.WithHeartbeat(20*time.Millisecond), sse.WithRetry(1500*time.Millisecond))
	// demo-slow streams a tick at once, then waits a second: idle time.
	runID := startRun(t, e.Client, demo.Slow, map[string]int{"seconds": 30})
	t.Cleanup(func() { _ = e.Client.Admin().CancelRun(context.Background(), runID) })
	resp := b.get(t, runID, "", nil)
	r := bufio.NewReader(resp.Body)
	if msg := readMessage(t, r); msg != "retry: 1500\n\n" {
		t.Fatalf("first message %q, want the retry field", msg)
	}
	sawTick := false
	for {
		msg := readMessage(t, r)
		if msg == ": heartbeat\n\n" {
			if !sawTick {
				// Still possible (a slow worker start), but keep reading
				// until a heartbeat follows the tick: it is the idle time
				// after an event that must be filled.
				continue
			}
			break
		}
		f := parseFrames(t, msg)[0]
		if f.event == string(runnel.EventStepStream) {
			sawTick = true
		}
	}
	resp.Body.Close()
	if err := b.lastErr(t); err != nil {
		t.Fatalf("sse.Stream returned %v when the client left, want nil", err)
	}
}

// TestStreamErrors: what goes wrong before the stream starts is an HTTP
// error with a JSON body.
func TestStreamErrors(t *testing.T) {
	t.Parallel()
	e := testengine.StartWithDemoWorker(t)
	runID := startRun(t, e.Client, demo.Text, map[string]int{"chunks": 1})
	good := newBackend(t, e.Client)

	// An engine nobody listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + ln.Addr().String()
	ln.Close()
	dead, err := runnel.NewClient(runnel.WithHost(deadURL), runnel.WithToken(e.Token))
	if err != nil {
		t.Fatal(err)
	}
	badToken, err := runnel.NewClient(runnel.WithHost(e.URL), runnel.WithToken("not-a-token"))
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name   string
		b      *backend
		runID  string
		query  string
		header http.Header
		status int
		code   string
	}{
		{"unknown run", good, "8d6f3c7e-3f1a-4c55-9a5e-1f2b3c4d5e6f", "", nil, 404, "not_found"},
		{"malformed run id", good, "no-such-run", "", nil, 404, "not_found"},
		{"Last-Event-ID with a space", good, runID, "", http.Header{"Last-Event-Id": {"ab 12"}}, 400, "invalid_argument"},
		{"Last-Event-ID too long", good, runID, "", http.Header{"Last-Event-Id": {strings.Repeat("7", 200)}}, 400, "invalid_argument"},
		{"after not ASCII", good, runID, "after=%C3%A9.1", nil, 400, "invalid_argument"},
		{"after with a control character", good, runID, "after=a%01b", nil, 400, "invalid_argument"},
		{"position the engine refuses", good, runID, "after=nodot", nil, 400, "invalid_argument"},
		{"position of another event log", good, runID, "", http.Header{"Last-Event-Id": {"00000000.1"}}, 400, "invalid_argument"},
		{"engine unreachable", newBackend(t, dead), runID, "", nil, 503, "unavailable"},
		{"engine refuses the backend's token", newBackend(t, badToken), runID, "", nil, 502, "bad_gateway"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := tc.b.get(t, tc.runID, tc.query, tc.header)
			raw, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.status || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("status %d %s, want %d JSON: %s", resp.StatusCode, resp.Header.Get("Content-Type"), tc.status, raw)
			}
			var body struct {
				Error struct{ Code, Message string }
			}
			if err := json.Unmarshal(raw, &body); err != nil || body.Error.Code != tc.code || body.Error.Message == "" {
				t.Fatalf("body %s (%v), want code %s and a message", raw, err, tc.code)
			}
			if err := tc.b.lastErr(t); err == nil {
				t.Fatal("sse.Stream returned nil")
			}
		})
	}
}

// TestStreamOfFinishedRunAfterItsEnd: a client that reconnects after the
// terminal event (it did not close on end) gets just the end again.
func TestStreamOfFinishedRunAfterItsEnd(t *testing.T) {
	t.Parallel()
	e := testengine.StartWithDemoWorker(t)
	b := newBackend(t, e.Client)
	runID := startRun(t, e.Client, demo.Text, map[string]int{"chunks": 2, "intervalMs": 0})
	frames := parseFrames(t, b.body(t, runID, "", nil))
	terminal := frames[len(frames)-2]
	if got := b.body(t, runID, "", http.Header{"Last-Event-Id": {terminal.id}}); got != frames[len(frames)-1].raw {
		t.Fatalf("after the terminal event: %q, want only the end", got)
	}
}

// TestStreamWithoutFlusher: a ResponseWriter that cannot flush cannot
// stream; Stream says so instead of buffering the whole run.
func TestStreamWithoutFlusher(t *testing.T) {
	t.Parallel()
	e := testengine.StartWithDemoWorker(t)
	runID := startRun(t, e.Client, demo.Text, map[string]int{"chunks": 1})
	w := &plainWriter{h: http.Header{}}
	req := httptest.NewRequestWithContext(testContext(t), http.MethodGet, "/", nil)
	if err := sse.Stream(w, req, e.Client, runID); err == nil || !strings.Contains(err.Error(), "flush") {
		t.Fatalf("Stream = %v, want an error about flushing", err)
	}
}

// plainWriter is a ResponseWriter without Flush.
type plainWriter struct {
	h   http.Header
	buf bytes.Buffer
}

func (w *plainWriter) Header() http.Header         { return w.h }
func (w *plainWriter) Write(p []byte) (int, error) { return w.buf.Write(p) }
func (w *plainWriter) WriteHeader(int)             {}

// TestStreamServerShutdownIsNotEnd: when the request's context ends on the
// server's side (a backend shutting down), the stream stops without the end
// message, so the client reconnects (to the next server) instead of
// believing the run is over.
func TestStreamServerShutdownIsNotEnd(t *testing.T) {
	t.Parallel()
	e := testengine.StartWithDemoWorker(t)
	stop := make(chan struct{})
	errs := make(chan error, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /runs/{id}", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		go func() {
			select {
			case <-stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		errs <- sse.Stream(w, r.WithContext(ctx), e.Client, r.PathValue("id"))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	b := &backend{URL: srv.URL, errs: errs}

	// The race this guards against (the subscription's channel closing as
	// the context ends) went either way, so try it a few times.
	for i := range 10 {
		stop = make(chan struct{})
		// Busy (a chunk every millisecond), so that the context often ends
		// while an event is being written.
		runID := startRun(t, e.Client, demo.Text, map[string]int{"chunks": 5000, "intervalMs": 1})
		resp := b.get(t, runID, "", nil)
		r := bufio.NewReader(resp.Body)
		for streamed := 0; streamed < 20; {
			msg := readMessage(t, r)
			if strings.HasPrefix(msg, ":") {
				continue // a heartbeat
			}
			if parseFrames(t, msg)[0].event == string(runnel.EventStepStream) {
				streamed++
			}
		}
		close(stop)
		rest, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("try %d: %v", i, err)
		}
		if strings.Contains(string(rest), "event: end") {
			t.Fatalf("try %d: end message after the server stopped the stream: %q", i, rest)
		}
		if err := b.lastErr(t); err != nil {
			t.Fatalf("try %d: sse.Stream returned %v, want nil", i, err)
		}
		// Free the demo worker's slot for the next try.
		if err := e.Client.Admin().CancelRun(testContext(t), runID); err != nil {
			t.Fatal(err)
		}
	}
}
