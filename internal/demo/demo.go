// Package demo holds the demo workflows that `runnel dev` and `runnel
// worker` run (PRODUCT.md section 4.1). Their names, inputs and outputs are
// stable: the README, the examples, the dashboard, the benchmarks and the
// tests rely on them.
//
// Every step reads its input with defaults for missing fields and fails
// without retries (runnel.NonRetryable) on an invalid one. Waits select on
// the step's context, so every demo stops promptly when cancelled.
package demo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/runnel-dev/runnel"
)

// Workflow names.
const (
	Text  = "demo-text"
	File  = "demo-file"
	Flaky = "demo-flaky"
	Slow  = "demo-slow"
	// Parent spawns Child runs and waits for them (children.go).
	Parent = "demo-parent"
	Child  = "demo-child"
)

// Limits on inputs, so a typo cannot make a worker allocate or run without
// bound.
const (
	MaxChunks     = 100_000
	MaxIntervalMs = 60_000
	// MaxFileBytes is the largest payload demo-file generates. Payloads
	// over runnel.MaxPayloadSize are refused by PutStream, which is the
	// point of asking for one.
	MaxFileBytes    = 64 << 20
	MaxFailAttempts = 100
	MaxSeconds      = 24 * 60 * 60
)

// FlakyRetries is demo-flaky's retry count: with failAttempts above it, the
// run fails.
const FlakyRetries = 3

// Workflows returns new definitions of the demo workflows, ready for
// runnel.Worker.Register.
func Workflows() []*runnel.Workflow {
	return []*runnel.Workflow{
		runnel.NewWorkflow(Text).Step("generate", generateText),
		runnel.NewWorkflow(File).Step("file", streamFile),
		runnel.NewWorkflow(Flaky).Step("flaky", flaky,
			runnel.Retries(FlakyRetries), runnel.Backoff(200*time.Millisecond)),
		runnel.NewWorkflow(Slow).Step("slow", slow),
		runnel.NewWorkflow(Parent).Step(ParentStep, spawnChildren),
		runnel.NewWorkflow(Child).Step(ChildStep, child),
	}
}

// readInput unmarshals the run input over v, which holds the defaults.
func readInput(ctx runnel.Context, v any) error {
	if err := ctx.WorkflowInput(v); err != nil {
		return runnel.NonRetryable(fmt.Errorf("%s: invalid input: %w", ctx.WorkflowName(), err))
	}
	return nil
}

func invalidInput(ctx runnel.Context, format string, args ...any) error {
	return runnel.NonRetryable(fmt.Errorf("%s: invalid input: %s", ctx.WorkflowName(), fmt.Sprintf(format, args...)))
}

// wait waits for d or until ctx is done.
func wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// sentence is what demo-text "generates", a word at a time, like an LLM.
var sentence = strings.Fields("Runnel streams every token from the worker to your browser as it is made, " +
	"in order and exactly once, even when the connection drops and comes back.")

// TextChunk returns demo-text's chunk i (from 0): a word and a space,
// cycling through a fixed sentence.
func TextChunk(i int) string {
	return sentence[i%len(sentence)] + " "
}

// TextOutput is the output of demo-text's generate step for the given
// number of chunks.
func TextOutput(chunks int) string {
	var b strings.Builder
	for i := range chunks {
		b.WriteString(TextChunk(i))
	}
	return b.String()
}

type textInput struct {
	Chunks     int `json:"chunks"`
	IntervalMs int `json:"intervalMs"`
}

// generateText streams `chunks` text chunks, one every `intervalMs`; output
// {"text": all chunks concatenated}.
func generateText(ctx runnel.Context) (any, error) {
	in := textInput{Chunks: 20, IntervalMs: 50}
	if err := readInput(ctx, &in); err != nil {
		return nil, err
	}
	if in.Chunks < 0 || in.Chunks > MaxChunks {
		return nil, invalidInput(ctx, "chunks must be between 0 and %d, not %d", MaxChunks, in.Chunks)
	}
	if in.IntervalMs < 0 || in.IntervalMs > MaxIntervalMs {
		return nil, invalidInput(ctx, "intervalMs must be between 0 and %d, not %d", MaxIntervalMs, in.IntervalMs)
	}
	interval := time.Duration(in.IntervalMs) * time.Millisecond
	var text strings.Builder
	for i := range in.Chunks {
		if i > 0 && interval > 0 {
			if err := wait(ctx, interval); err != nil {
				return nil, err
			}
		}
		chunk := TextChunk(i)
		if err := ctx.PutStream([]byte(chunk)); err != nil {
			return nil, err
		}
		text.WriteString(chunk)
	}
	return map[string]string{"text": text.String()}, nil
}

// FilePayload returns demo-file's payload of n bytes: pseudo-random bytes
// from a fixed seed, the same for every run. It is never valid UTF-8 (for
// n > 0): it starts with 0xff, a byte UTF-8 never uses.
func FilePayload(n int) []byte {
	if n <= 0 {
		return []byte{}
	}
	var seed [32]byte
	copy(seed[:], "runnel demo-file payload seed!!!")
	data := make([]byte, n)
	_, _ = rand.NewChaCha8(seed).Read(data) // never fails
	data[0] = 0xff
	return data
}

type fileInput struct {
	// Bytes is the payload size for FormatRandom; nil means the default.
	Bytes  *int   `json:"bytes"`
	Format string `json:"format"`
}

// FileOutput is the output of demo-file's file step.
type FileOutput struct {
	Bytes  int    `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// streamFile streams one binary payload of `bytes` bytes; output {"bytes":
// N, "sha256": hex}. Over runnel.MaxPayloadSize the put is refused and the
// step fails, without retries, with an error naming the limit. With
// {"format": "png"} the payload is FileImage() instead, for pages that show
// a streamed file; its size is fixed, so `bytes` is refused with it.
func streamFile(ctx runnel.Context) (any, error) {
	var in fileInput
	if err := readInput(ctx, &in); err != nil {
		return nil, err
	}
	var data []byte
	switch in.Format {
	case "", FormatRandom:
		n := 1 << 20
		if in.Bytes != nil {
			n = *in.Bytes
		}
		if n < 0 || n > MaxFileBytes {
			return nil, invalidInput(ctx, "bytes must be between 0 and %d, not %d", MaxFileBytes, n)
		}
		data = FilePayload(n)
	case FormatPNG:
		if in.Bytes != nil {
			return nil, invalidInput(ctx, "bytes does not apply to format %q (the image has a fixed size)", FormatPNG)
		}
		data = FileImage()
	default:
		return nil, invalidInput(ctx, "format must be %q or %q, not %q", FormatRandom, FormatPNG, in.Format)
	}
	if err := ctx.PutStream(data); err != nil {
		if errors.Is(err, runnel.ErrPayloadTooLarge) {
			return nil, runnel.NonRetryable(fmt.Errorf("%s: %w", ctx.WorkflowName(), err))
		}
		return nil, err
	}
	sum := sha256.Sum256(data)
	return FileOutput{Bytes: len(data), SHA256: hex.EncodeToString(sum[:])}, nil
}

type flakyInput struct {
	FailAttempts int `json:"failAttempts"`
}

// flaky streams "attempt <k>" and fails while k <= failAttempts; output
// {"attempts": k} once it succeeds.
func flaky(ctx runnel.Context) (any, error) {
	in := flakyInput{FailAttempts: 1}
	if err := readInput(ctx, &in); err != nil {
		return nil, err
	}
	if in.FailAttempts < 0 || in.FailAttempts > MaxFailAttempts {
		return nil, invalidInput(ctx, "failAttempts must be between 0 and %d, not %d", MaxFailAttempts, in.FailAttempts)
	}
	k := ctx.Attempt()
	if err := ctx.PutStream(fmt.Appendf(nil, "attempt %d", k)); err != nil {
		return nil, err
	}
	if k <= in.FailAttempts {
		return nil, fmt.Errorf("attempt %d failed on purpose (failAttempts=%d)", k, in.FailAttempts)
	}
	return map[string]int{"attempts": k}, nil
}

type slowInput struct {
	Seconds int `json:"seconds"`
}

// slow streams "tick <i>" (i from 0) once a second for `seconds` seconds, the
// first at once; output {"ticks": n}. It returns the context's error as
// soon as it is cancelled.
func slow(ctx runnel.Context) (any, error) {
	in := slowInput{Seconds: 30}
	if err := readInput(ctx, &in); err != nil {
		return nil, err
	}
	if in.Seconds < 0 || in.Seconds > MaxSeconds {
		return nil, invalidInput(ctx, "seconds must be between 0 and %d, not %d", MaxSeconds, in.Seconds)
	}
	for i := range in.Seconds {
		if err := ctx.PutStream(fmt.Appendf(nil, "tick %d", i)); err != nil {
			return nil, err
		}
		if err := wait(ctx, time.Second); err != nil {
			return nil, err
		}
	}
	return map[string]int{"ticks": in.Seconds}, nil
}
