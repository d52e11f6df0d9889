package bench

import (
	"bytes"
	"fmt"
	"strconv"
	"time"

	"github.com/runnel-dev/runnel"
)

// Workflow names the bench worker registers.
const (
	// Emit streams payloads, as fast as it can or at a rate, for a duration
	// or a count (EmitInput), and returns what it did (EmitOutput).
	Emit = "bench-emit"
	// Noop is a one-step run that does nothing: the runs scenario measures
	// the engine's own cost of a run.
	Noop = "bench-noop"
)

// EmitInput is bench-emit's input.
type EmitInput struct {
	// StartAtNs is the wall-clock time (Unix ns) of the first put: runs
	// started together begin together, and subscribers connect before it.
	StartAtNs int64 `json:"startAtNs"`
	// Rate is events/s; 0 puts as fast as the stream's back-pressure allows.
	Rate int `json:"rate"`
	// DurationMs stops putting after this long; Count after this many
	// events. The first limit reached ends the step.
	DurationMs int64 `json:"durationMs"`
	Count      int64 `json:"count"`
	// Size is each payload's size in bytes (at least payloadHeader).
	Size int `json:"size"`
}

// EmitOutput is bench-emit's output: the events it put, every one
// acknowledged as stored by the engine (the step flushes before returning),
// and the wall-clock span from the first put to the last acknowledgement.
type EmitOutput struct {
	Events  int64 `json:"events"`
	StartNs int64 `json:"startNs"`
	EndNs   int64 `json:"endNs"`
}

// payloadHeader is the size of a payload's header: the send time (Unix ns)
// and the sequence number, as ASCII digits, so payloads are valid UTF-8 and
// travel as text through SSE as they would for an LLM's tokens.
const payloadHeader = 19 + 1 + 10 + 1

// Workflows are the bench worker's workflows.
func Workflows() []*runnel.Workflow {
	return []*runnel.Workflow{
		runnel.NewWorkflow(Emit).Step("emit", emit),
		runnel.NewWorkflow(Noop).Step("noop", func(runnel.Context) (any, error) { return map[string]bool{"ok": true}, nil }),
	}
}

func emit(ctx runnel.Context) (any, error) {
	var in EmitInput
	if err := ctx.WorkflowInput(&in); err != nil {
		return nil, runnel.NonRetryable(fmt.Errorf("bench-emit: invalid input: %w", err))
	}
	if in.Size < payloadHeader {
		in.Size = payloadHeader
	}
	if in.DurationMs <= 0 && in.Count <= 0 {
		return nil, runnel.NonRetryable(fmt.Errorf("bench-emit: invalid input: set durationMs or count"))
	}
	if wait := time.Until(time.Unix(0, in.StartAtNs)); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
	}
	start := time.Now()
	var deadline time.Time
	if in.DurationMs > 0 {
		deadline = start.Add(time.Duration(in.DurationMs) * time.Millisecond)
	}
	payload := bytes.Repeat([]byte{'x'}, in.Size)
	var n int64
	// Each payload is stamped when PutStream is called, not with the
	// ticker's time: a tick's value is when it was due, and counting the
	// step's own wake-up delay would charge the engine for it.
	put := func() error {
		n++
		encodeHeader(payload, time.Now().UnixNano(), n)
		return ctx.PutStream(payload)
	}
	done := func(now time.Time) bool {
		return (in.Count > 0 && n >= in.Count) || (!deadline.IsZero() && !now.Before(deadline))
	}
	if in.Rate <= 0 {
		for now := start; !done(now); now = time.Now() {
			if err := put(); err != nil {
				return nil, err
			}
		}
	} else {
		// Event i is due at start + i/rate: wake once a millisecond at most
		// and put everything due, so the rate holds whatever the timer's
		// granularity.
		interval := time.Second / time.Duration(in.Rate)
		tick := time.NewTicker(max(interval, time.Millisecond))
		defer tick.Stop()
		for now := start; !done(now); {
			due := int64(now.Sub(start)/interval) + 1
			for n < due && !done(now) {
				if err := put(); err != nil {
					return nil, err
				}
			}
			select {
			case now = <-tick.C:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
	if err := ctx.Flush(); err != nil {
		return nil, err
	}
	return EmitOutput{Events: n, StartNs: start.UnixNano(), EndNs: time.Now().UnixNano()}, nil
}

// encodeHeader writes the send time (19 digits, true of any time between
// 2001 and 2286) and the zero-padded sequence number at the start of p.
func encodeHeader(p []byte, sentNs, seq int64) {
	var digits [20]byte
	copy(p, strconv.AppendInt(digits[:0], sentNs, 10))
	p[19] = ' '
	s := strconv.AppendInt(digits[:0], seq, 10)
	pad := 10 - len(s)
	for i := range pad {
		p[20+i] = '0'
	}
	copy(p[20+pad:], s)
	p[30] = ' '
}

// decodeHeader reads a payload's send time and sequence number.
func decodeHeader(p []byte) (sentNs, seq int64, err error) {
	if len(p) < payloadHeader {
		return 0, 0, fmt.Errorf("bench payload of %d bytes is shorter than its %d-byte header", len(p), payloadHeader)
	}
	if sentNs, err = strconv.ParseInt(string(p[:19]), 10, 64); err != nil {
		return 0, 0, fmt.Errorf("bench payload send time: %w", err)
	}
	if seq, err = strconv.ParseInt(string(p[20:30]), 10, 64); err != nil {
		return 0, 0, fmt.Errorf("bench payload sequence number: %w", err)
	}
	return sentNs, seq, nil
}
