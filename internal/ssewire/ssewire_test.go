package ssewire

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestWriteFramesEvents(t *testing.T) {
	t.Parallel()
	ts := time.Date(2026, 11, 24, 12, 0, 0, 5000, time.UTC)
	var b bytes.Buffer
	err := Write(&b, Event{
		Position: "ab12cd34.7", RunID: "r1", Workflow: "wf", Type: "step.stream",
		StepRunID: "s1", Step: "gen", Attempt: 2, Payload: []byte("line1\nline2\r\nend"), Time: ts,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "id: ab12cd34.7\nevent: step.stream\ndata: " +
		`{"attempt":2,"payload":"line1\nline2\r\nend","runId":"r1","step":"gen","stepRunId":"s1","timestamp":"2026-11-24T12:00:00.000005Z","type":"step.stream","workflow":"wf"}` +
		"\n\n"
	if b.String() != want {
		t.Fatalf("got\n%q\nwant\n%q", b.String(), want)
	}
}

func TestBinaryPayloadIsBase64(t *testing.T) {
	t.Parallel()
	payload := []byte{0xff, 0x00, '\n', 0xfe}
	m := DataObject(Event{Type: "step.stream", Payload: payload})
	if m["encoding"] != "base64" || m["payload"] != base64.StdEncoding.EncodeToString(payload) {
		t.Fatalf("got %v", m)
	}
}

func TestDetailsAreMergedButCannotOverrideFields(t *testing.T) {
	t.Parallel()
	m := DataObject(Event{RunID: "r", Type: "step.completed", StepRunID: "s",
		Data: json.RawMessage(`{"output":{"x":1},"runId":"forged"}`)})
	if m["runId"] != "r" {
		t.Fatalf("runId overridden: %v", m)
	}
	if _, ok := m["output"]; !ok {
		t.Fatalf("output missing: %v", m)
	}
}

func TestWriteRefusesLineBreaks(t *testing.T) {
	t.Parallel()
	for _, tc := range [][3]string{{"a\nb", "x", "{}"}, {"a", "x\r", "{}"}, {"a", "x", "{\n}"}} {
		if err := WriteEvent(&bytes.Buffer{}, tc[0], tc[1], []byte(tc[2])); err == nil {
			t.Fatalf("no error for %q", tc)
		}
	}
}

// FuzzWrite: whatever a step puts and whatever details an event has, a frame
// is exactly three lines and a blank one, and its data decodes back to the
// payload.
func FuzzWrite(f *testing.F) {
	f.Add([]byte("hello"), []byte(`{"output":1}`))
	f.Add([]byte("a\r\nb\u2028c"), []byte(`{}`))
	f.Add([]byte{0xff, '\n', '\r'}, []byte(`not json`))
	f.Fuzz(func(t *testing.T, payload, details []byte) {
		var b bytes.Buffer
		ev := Event{Position: "p.1", RunID: "r", Type: "step.stream", StepRunID: "s", Payload: payload, Data: details}
		if err := Write(&b, ev); err != nil {
			t.Fatal(err)
		}
		frame := b.String()
		if !strings.HasSuffix(frame, "\n\n") || strings.Count(frame, "\n") != 4 || strings.Contains(frame, "\r") {
			t.Fatalf("bad framing: %q", frame)
		}
		data := strings.TrimPrefix(strings.Split(frame, "\n")[2], "data: ")
		var m map[string]any
		if err := json.Unmarshal([]byte(data), &m); err != nil {
			t.Fatal(err)
		}
		got := []byte(m["payload"].(string))
		if m["encoding"] == "base64" {
			var err error
			if got, err = base64.StdEncoding.DecodeString(m["payload"].(string)); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(got, payload) {
			t.Fatalf("payload %q came back as %q", payload, got)
		}
	})
}

// Data's struct encoding of events without details is byte for byte the
// map encoding of DataObject, whatever the fields hold.
func FuzzDataMatchesDataObject(f *testing.F) {
	f.Add("run", "wf", "step.stream", "sr", "step", 1, []byte("hello <b>&</b>\u2028"), int64(1700000000123456789))
	f.Add("run", "wf", "run.started", "", "", 0, []byte(nil), int64(0))
	f.Add("r\"un", "w\\f", "step.stream", "sr", "", 0, []byte{0xff, 0x00, '\n'}, int64(-5))
	f.Fuzz(func(t *testing.T, runID, workflow, typ, stepRunID, step string, attempt int, payload []byte, ns int64) {
		ev := Event{RunID: runID, Workflow: workflow, Type: typ, StepRunID: stepRunID, Step: step, Attempt: attempt, Payload: payload, Time: time.Unix(0, ns)}
		want, err := json.Marshal(DataObject(ev))
		if err != nil {
			t.Fatal(err)
		}
		if got := Data(ev); !bytes.Equal(got, want) {
			t.Fatalf("Data = %s\nwant   %s", got, want)
		}
	})
}

// countingWriter records the largest single write.
type countingWriter struct {
	bytes.Buffer
	largest int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.largest = max(w.largest, len(p))
	return w.Buffer.Write(p)
}

// A large payload is written in pieces of at most about ChunkSize, and the
// pieces make exactly the frame a whole encoding gives: text with
// multi-byte characters and characters JSON escapes across the piece
// boundaries, binary (base64), with and without details.
func TestLargePayloadIsWrittenInPiecesWithTheSameBytes(t *testing.T) {
	t.Parallel()
	text := []byte(strings.Repeat("héllo <wörld> & \"quotes\"\n\u2028 日本語 ", 40000))
	binary := make([]byte, 4<<20)
	for i := range binary {
		binary[i] = byte(i*7 + i/251)
	}
	for name, ev := range map[string]Event{
		"text":            {Payload: text},
		"binary":          {Payload: binary},
		"text details":    {Payload: text, Data: json.RawMessage(`{"stream":"files","zeta":{"x":""}}`)},
		"nested payload":  {Payload: text, Data: json.RawMessage(`{"a":{"payload":""}}`)}, // written whole
		"binary details":  {Payload: binary, Data: json.RawMessage(`{"stream":"files"}`)},
		"binary no step":  {Payload: binary[:ChunkSize+1], StepRunID: ""},
		"text odd length": {Payload: text[:ChunkSize*3+5]},
	} {
		ev.Position, ev.RunID, ev.Workflow, ev.Type = "p.1", "r", "wf", "step.stream"
		if name != "binary no step" {
			ev.StepRunID, ev.Step, ev.Attempt = "s", "file", 3
		}
		var want bytes.Buffer
		if err := WriteEvent(&want, ev.Position, ev.Type, Data(ev)); err != nil {
			t.Fatal(err)
		}
		var got countingWriter
		if err := Write(&got, ev); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Fatalf("%s: the pieces differ from the whole frame (%d vs %d bytes)", name, got.Len(), want.Len())
		}
		if got.largest > 6*ChunkSize && name != "nested payload" {
			t.Fatalf("%s: a write of %d bytes", name, got.largest)
		}
	}
}
