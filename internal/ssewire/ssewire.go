// Package ssewire is Runnel's Server-Sent Events format, shared by the
// engine's SSE endpoints and the public sse package so both speak exactly
// the same frames:
//
//	id: <position>
//	event: <type>
//	data: <one line of JSON>
//
// The data object holds runId, workflow, type and timestamp; step events add
// stepRunId, step and attempt; the event's details (output, error, …) are
// merged in; step.stream events carry payload, as text when it is valid
// UTF-8, else base64 with "encoding": "base64".
package ssewire

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// Event is one run event, in the fields SSE carries.
type Event struct {
	Position  string
	RunID     string
	Workflow  string
	Type      string
	StepRunID string
	Step      string
	Attempt   int
	Stream    string // "" for the default stream (then left out of the data)
	Payload   []byte
	Data      json.RawMessage // JSON object of details, may be empty
	Time      time.Time
}

// EndEvent is the name of the message that ends a run stream.
const EndEvent = "end"

// DataObject returns the data object of an event.
func DataObject(ev Event) map[string]any {
	m := make(map[string]any, 8)
	if len(ev.Data) > 0 {
		// Details first, so the fixed fields below always win.
		_ = json.Unmarshal(ev.Data, &m)
	}
	m["runId"] = ev.RunID
	m["workflow"] = ev.Workflow
	m["type"] = ev.Type
	m["timestamp"] = ev.Time.UTC().Format(time.RFC3339Nano)
	if ev.StepRunID != "" {
		m["stepRunId"] = ev.StepRunID
		m["step"] = ev.Step
		m["attempt"] = ev.Attempt
	}
	if ev.Stream != "" {
		m["stream"] = ev.Stream
	}
	if ev.Type == "step.stream" {
		if utf8.Valid(ev.Payload) {
			m["payload"] = string(ev.Payload)
		} else {
			m["payload"] = base64.StdEncoding.EncodeToString(ev.Payload)
			m["encoding"] = "base64"
		}
	}
	return m
}

// plainData is DataObject for an event without details, as a struct whose
// fields are in the order encoding/json sorts a map's keys: it encodes to
// the same bytes several times faster (no map, no sort), which matters on
// the path of every stream event to every SSE subscriber.
type plainData struct {
	Attempt   *int    `json:"attempt,omitempty"`
	Encoding  string  `json:"encoding,omitempty"`
	Payload   *string `json:"payload,omitempty"`
	RunID     string  `json:"runId"`
	Step      *string `json:"step,omitempty"`
	StepRunID string  `json:"stepRunId,omitempty"`
	Stream    string  `json:"stream,omitempty"`
	Timestamp string  `json:"timestamp"`
	Type      string  `json:"type"`
	Workflow  string  `json:"workflow"`
}

// Data returns the one-line JSON data of an event.
func Data(ev Event) []byte {
	var v any
	if len(ev.Data) > 0 {
		v = DataObject(ev)
	} else {
		d := plainData{RunID: ev.RunID, Workflow: ev.Workflow, Type: ev.Type, Stream: ev.Stream, Timestamp: ev.Time.UTC().Format(time.RFC3339Nano)}
		if ev.StepRunID != "" {
			d.StepRunID, d.Step, d.Attempt = ev.StepRunID, &ev.Step, &ev.Attempt
		}
		if ev.Type == "step.stream" {
			var p string
			if utf8.Valid(ev.Payload) {
				p = string(ev.Payload)
			} else {
				p, d.Encoding = base64.StdEncoding.EncodeToString(ev.Payload), "base64"
			}
			d.Payload = &p
		}
		v = d
	}
	b, err := json.Marshal(v)
	if err != nil {
		// Only strings, numbers and decoded JSON: cannot fail.
		panic(fmt.Sprintf("ssewire: encode event: %v", err))
	}
	return b
}

// WriteEvent writes one event frame. The data is JSON, which encoding/json
// never spreads over lines; any CR or LF is still refused rather than
// allowed to break the framing, and so are they in id and name.
func WriteEvent(w io.Writer, id, name string, data []byte) error {
	if strings.ContainsAny(id, "\r\n") || strings.ContainsAny(name, "\r\n") || bytes.ContainsAny(data, "\r\n") {
		return fmt.Errorf("ssewire: line break in an SSE field (id %q, event %q)", id, name)
	}
	var b bytes.Buffer
	b.Grow(len(id) + len(name) + len(data) + 24)
	if id != "" {
		b.WriteString("id: ")
		b.WriteString(id)
		b.WriteByte('\n')
	}
	if name != "" {
		b.WriteString("event: ")
		b.WriteString(name)
		b.WriteByte('\n')
	}
	b.WriteString("data: ")
	b.Write(data)
	b.WriteString("\n\n")
	_, err := w.Write(b.Bytes())
	return err
}

// Write writes an event as a frame: its position as id, its type as name.
// A step.stream payload over ChunkSize is encoded and written piece by
// piece (see writeLarge), so a frame of up to 5.4 MiB never sits whole in
// memory: what a subscriber holds while its client is slow is one piece.
func Write(w io.Writer, ev Event) error {
	if ev.Type == "step.stream" && len(ev.Payload) > ChunkSize {
		return writeLarge(w, ev)
	}
	return WriteEvent(w, ev.Position, ev.Type, Data(ev))
}

// ChunkSize is the most a streamed payload puts in one write.
const ChunkSize = 64 << 10

// writeLarge writes the frame of a step.stream event with a large payload
// in pieces: the frame up to the payload's value, the payload encoded
// ChunkSize bytes at a time (base64 and JSON string escaping both work
// character by character, so the pieces join into exactly the encoding of
// the whole), then the rest. The bytes are the same as Write's for a small
// payload.
func writeLarge(w io.Writer, ev Event) error {
	text := utf8.Valid(ev.Payload)
	payload := ev.Payload
	ev.Payload = nil
	var data []byte
	if len(ev.Data) > 0 {
		m := DataObject(ev)
		m["payload"] = ""
		if !text {
			m["encoding"] = "base64"
		}
		data, _ = json.Marshal(m) // strings, numbers and decoded JSON: cannot fail
	} else {
		data = Data(ev)
		if !text {
			data = bytes.Replace(data, []byte(`"payload":""`), []byte(`"encoding":"base64","payload":""`), 1)
		}
	}
	const field = `"payload":""`
	// The fields are sorted, and those before "payload" hold no such
	// text unless a nested detail does: then encode the frame whole.
	i := bytes.Index(data, []byte(field))
	if i < 0 || bytes.Count(data, []byte(field)) != 1 {
		ev.Payload = payload
		return WriteEvent(w, ev.Position, ev.Type, Data(ev))
	}
	head, tail := data[:i+len(field)-1], data[i+len(field)-1:] // split inside the quotes
	var b bytes.Buffer
	if err := WriteEvent(&b, ev.Position, ev.Type, head); err != nil {
		return err
	}
	b.Truncate(b.Len() - 2) // WriteEvent ends the frame; it goes on
	if _, err := w.Write(b.Bytes()); err != nil {
		return err
	}
	if text {
		err := writeChunks(w, payload, func(chunk []byte) []byte {
			quoted, _ := json.Marshal(string(chunk)) // a string: cannot fail
			return quoted[1 : len(quoted)-1]
		}, true)
		if err != nil {
			return err
		}
	} else {
		buf := make([]byte, base64.StdEncoding.EncodedLen(ChunkSize/4*3))
		err := writeChunks(w, payload, func(chunk []byte) []byte {
			n := base64.StdEncoding.EncodedLen(len(chunk))
			base64.StdEncoding.Encode(buf[:n], chunk)
			return buf[:n]
		}, false)
		if err != nil {
			return err
		}
	}
	_, err := w.Write(append(tail[:len(tail):len(tail)], '\n', '\n'))
	return err
}

// writeChunks writes payload encoded piece by piece: pieces of a multiple
// of 3 bytes (base64 without padding inside), cut at a character boundary
// for text.
func writeChunks(w io.Writer, payload []byte, encode func([]byte) []byte, text bool) error {
	size := ChunkSize / 4 * 3 // base64 output fits ChunkSize; JSON text grows little
	for len(payload) > 0 {
		n := min(size, len(payload))
		if text {
			for n < len(payload) && !utf8.RuneStart(payload[n]) {
				n--
			}
		}
		if _, err := w.Write(encode(payload[:n])); err != nil {
			return err
		}
		payload = payload[n:]
	}
	return nil
}

// WriteComment writes a comment line (used as a heartbeat), ignored by
// clients.
func WriteComment(w io.Writer, text string) error {
	text = strings.NewReplacer("\r", " ", "\n", " ").Replace(text)
	_, err := io.WriteString(w, ": "+text+"\n\n")
	return err
}

// WriteEnd writes the message that ends a run stream after its terminal
// event. It carries no id, so a client's Last-Event-ID stays the terminal
// event's position.
func WriteEnd(w io.Writer, runID string) error {
	data, _ := json.Marshal(map[string]string{"runId": runID})
	return WriteEvent(w, "", EndEvent, data)
}
