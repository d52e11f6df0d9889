// Package aichunk writes AI SDK UI message chunks (the UI message stream
// protocol of the `ai` npm package, v5 and later) from a Go step into the
// run's stream, one chunk per step.stream event, as JSON. A page follows
// the run with @runnel/ai's RunnelChatTransport and useChat shows the
// answer, exactly as if a TypeScript step had written it.
//
//	w := aichunk.NewWriter(ctx)
//	w.Start()
//	id := w.TextStart()
//	for _, tok := range tokens {
//		w.TextDelta(id, tok)
//	}
//	w.TextEnd(id)
//	return nil, w.Finish("stop")
package aichunk

import (
	"encoding/json"
	"strconv"

	"github.com/runnel-dev/runnel"
)

// Putter is what a writer puts on: a step's context (runnel.Context).
type Putter interface {
	PutStream(data []byte, opts ...runnel.PutOption) error
}

// Chunk is one UI message chunk: "type" and the chunk type's fields
// (e.g. {"type": "text-delta", "id": "0", "delta": "Hi"}).
type Chunk map[string]any

// Put puts one chunk on the step's stream, as JSON; opts choose the stream
// (runnel.ToStream), the default one without.
func Put(p Putter, c Chunk, opts ...runnel.PutOption) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return p.PutStream(b, opts...)
}

// Writer writes the chunks of one assistant message. The first error of a
// put is kept: later calls do nothing and return it.
type Writer struct {
	p     Putter
	opts  []runnel.PutOption
	next  int
	err   error
	steps bool
}

// NewWriter returns a writer putting on p: on the run's default stream, or
// on the stream named with runnel.ToStream (e.g. a "chat" stream beside a
// step's other output).
func NewWriter(p Putter, opts ...runnel.PutOption) *Writer { return &Writer{p: p, opts: opts} }

func (w *Writer) put(c Chunk) error {
	if w.err == nil {
		w.err = Put(w.p, c, w.opts...)
	}
	return w.err
}

// Err returns the first error a put returned.
func (w *Writer) Err() error { return w.err }

// Start begins the message (and its first step).
func (w *Writer) Start() error {
	w.put(Chunk{"type": "start"})
	w.steps = true
	return w.put(Chunk{"type": "start-step"})
}

// TextStart begins a text part and returns its id.
func (w *Writer) TextStart() string {
	id := strconv.Itoa(w.next)
	w.next++
	w.put(Chunk{"type": "text-start", "id": id})
	return id
}

// TextDelta appends text to the text part id.
func (w *Writer) TextDelta(id, delta string) error {
	return w.put(Chunk{"type": "text-delta", "id": id, "delta": delta})
}

// TextEnd ends the text part id.
func (w *Writer) TextEnd(id string) error { return w.put(Chunk{"type": "text-end", "id": id}) }

// ToolCall puts a tool call whose input is complete, and its output.
func (w *Writer) ToolCall(toolCallID, toolName string, input, output any) error {
	w.put(Chunk{"type": "tool-input-available", "toolCallId": toolCallID, "toolName": toolName, "input": input})
	return w.put(Chunk{"type": "tool-output-available", "toolCallId": toolCallID, "output": output})
}

// Error puts an error chunk (useChat reports it).
func (w *Writer) Error(text string) error { return w.put(Chunk{"type": "error", "errorText": text}) }

// Finish ends the step and the message with a finish reason ("stop",
// "length", "tool-calls", "error", ... or "" for none).
func (w *Writer) Finish(reason string) error {
	if w.steps {
		w.put(Chunk{"type": "finish-step"})
	}
	c := Chunk{"type": "finish"}
	if reason != "" {
		c["finishReason"] = reason
	}
	return w.put(c)
}
