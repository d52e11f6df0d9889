package demo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/runnel-dev/runnel"
)

// fakeContext is a runnel.Context without a worker: it records puts and
// enforces the payload limit like the SDK does.
type fakeContext struct {
	context.Context
	workflow string
	input    string
	attempt  int
	puts     [][]byte
}

func newFakeContext(ctx context.Context, workflow, input string, attempt int) *fakeContext {
	return &fakeContext{Context: ctx, workflow: workflow, input: input, attempt: attempt}
}

// CloseStream: the demos put on the default stream only.
func (c *fakeContext) CloseStream(string) error {
	return errors.New("fakeContext: CloseStream is not used by the demos")
}

func (c *fakeContext) PutStream(data []byte, opts ...runnel.PutOption) error {
	if len(opts) > 0 {
		return errors.New("fakeContext: the demos put on the default stream only")
	}
	if len(data) > runnel.MaxPayloadSize {
		return fmt.Errorf("stream payload of %d bytes exceeds the 4 MiB limit: %w", len(data), runnel.ErrPayloadTooLarge)
	}
	if err := c.Err(); err != nil {
		return err
	}
	c.puts = append(c.puts, append([]byte(nil), data...))
	return nil
}

func (c *fakeContext) WorkflowInput(v any) error             { return json.Unmarshal([]byte(c.input), v) }
func (c *fakeContext) StepOutput(string, any) error          { return errors.New("no parents") }
func (c *fakeContext) AdditionalMetadata() map[string]string { return map[string]string{} }
func (c *fakeContext) RetryCount() int                       { return c.attempt - 1 }
func (c *fakeContext) Attempt() int                          { return c.attempt }
func (c *fakeContext) RunID() string                         { return "run" }
func (c *fakeContext) StepRunID() string                     { return "step-run" }
func (c *fakeContext) StepName() string                      { return "step" }
func (c *fakeContext) WorkflowName() string                  { return c.workflow }
func (c *fakeContext) Flush() error                          { return nil }
func (c *fakeContext) SpawnWorkflow(string, any, ...runnel.RunOption) (*runnel.ChildRun, error) {
	return nil, errors.New("fakeContext: no engine to spawn runs on")
}

// outputJSON marshals a step output as the worker would.
func outputJSON(t *testing.T, out any) string {
	t.Helper()
	b, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWorkflowsRegister(t *testing.T) {
	c, err := runnel.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	w, err := c.NewWorker("demo")
	if err != nil {
		t.Fatal(err)
	}
	wfs := Workflows()
	if err := w.Register(wfs...); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, wf := range wfs {
		names = append(names, wf.Name())
	}
	if got := strings.Join(names, ","); got != "demo-text,demo-file,demo-flaky,demo-slow,demo-parent,demo-child" {
		t.Errorf("workflows %s", got)
	}
}

func TestText(t *testing.T) {
	ctx := newFakeContext(context.Background(), Text, `{"intervalMs":0}`, 1)
	out, err := generateText(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ctx.puts) != 20 {
		t.Fatalf("%d chunks, want the default 20", len(ctx.puts))
	}
	var all strings.Builder
	for i, p := range ctx.puts {
		if string(p) != TextChunk(i) || !utf8.Valid(p) || !strings.HasSuffix(string(p), " ") {
			t.Errorf("chunk %d = %q", i, p)
		}
		all.Write(p)
	}
	want, _ := json.Marshal(map[string]string{"text": all.String()})
	if got := outputJSON(t, out); got != string(want) || all.String() != TextOutput(20) {
		t.Errorf("output %s, want %s", got, want)
	}

	ctx = newFakeContext(context.Background(), Text, `{"chunks":3,"intervalMs":1}`, 1)
	if _, err := generateText(ctx); err != nil || len(ctx.puts) != 3 {
		t.Errorf("3 chunks: %v, %d puts", err, len(ctx.puts))
	}
}

func TestInvalidInputs(t *testing.T) {
	cases := []struct {
		fn    runnel.StepFunc
		wf    string
		input string
		want  string
	}{
		{generateText, Text, `{"chunks":-1}`, "chunks must be between 0 and 100000, not -1"},
		{generateText, Text, `{"chunks":1000000000}`, "chunks must be between"},
		{generateText, Text, `{"intervalMs":-5}`, "intervalMs must be between"},
		{generateText, Text, `{"chunks":"many"}`, "invalid input"},
		{streamFile, File, `{"bytes":-1}`, "bytes must be between"},
		{streamFile, File, `{"bytes":1e12}`, "invalid input"},
		{streamFile, File, `{"format":"gif"}`, `format must be "random" or "png", not "gif"`},
		{streamFile, File, `{"format":"png","bytes":10}`, `bytes does not apply to format "png"`},
		{flaky, Flaky, `{"failAttempts":-1}`, "failAttempts must be between"},
		{slow, Slow, `{"seconds":-3}`, "seconds must be between"},
		{slow, Slow, `[1]`, "invalid input"},
	}
	for _, tc := range cases {
		ctx := newFakeContext(context.Background(), tc.wf, tc.input, 1)
		_, err := tc.fn(ctx)
		if err == nil || !runnel.IsNonRetryable(err) || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), tc.wf) {
			t.Errorf("%s %s: error %v, want a non-retryable error containing %q", tc.wf, tc.input, err, tc.want)
		}
		if len(ctx.puts) != 0 {
			t.Errorf("%s %s: streamed before validating", tc.wf, tc.input)
		}
	}
}

func TestFile(t *testing.T) {
	ctx := newFakeContext(context.Background(), File, `{}`, 1)
	out, err := streamFile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ctx.puts) != 1 || len(ctx.puts[0]) != 1<<20 {
		t.Fatalf("puts: %d", len(ctx.puts))
	}
	p := ctx.puts[0]
	if utf8.Valid(p) || p[0] != 0xff {
		t.Error("payload is valid UTF-8")
	}
	sum := sha256.Sum256(p)
	want := fmt.Sprintf(`{"bytes":1048576,"sha256":"%s"}`, hex.EncodeToString(sum[:]))
	if got := outputJSON(t, out); got != want {
		t.Errorf("output %s, want %s", got, want)
	}
	if string(FilePayload(1<<20)) != string(p) {
		t.Error("payload is not deterministic")
	}

	ctx = newFakeContext(context.Background(), File, `{"bytes":0}`, 1)
	if _, err := streamFile(ctx); err != nil || len(ctx.puts) != 1 || len(ctx.puts[0]) != 0 {
		t.Errorf("0 bytes: %v", err)
	}

	ctx = newFakeContext(context.Background(), File, fmt.Sprintf(`{"bytes":%d}`, runnel.MaxPayloadSize+1), 1)
	_, err = streamFile(ctx)
	if !runnel.IsNonRetryable(err) || !errors.Is(err, runnel.ErrPayloadTooLarge) || !strings.Contains(err.Error(), "4 MiB") {
		t.Errorf("over the limit: %v, want a non-retryable error naming the 4 MiB limit", err)
	}
}

// TestFileImage: {"format": "png"} streams a PNG that decodes to the
// documented size, and reports its length and hash like the default format.
func TestFileImage(t *testing.T) {
	ctx := newFakeContext(context.Background(), File, `{"format":"png"}`, 1)
	out, err := streamFile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ctx.puts) != 1 {
		t.Fatalf("%d puts, want 1", len(ctx.puts))
	}
	p := ctx.puts[0]
	if utf8.Valid(p) {
		t.Error("the PNG is valid UTF-8: it would travel as text")
	}
	img, err := png.Decode(bytes.NewReader(p))
	if err != nil {
		t.Fatalf("payload is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != ImageWidth || b.Dy() != ImageHeight {
		t.Errorf("image is %v, want %dx%d", b, ImageWidth, ImageHeight)
	}
	sum := sha256.Sum256(p)
	want := fmt.Sprintf(`{"bytes":%d,"sha256":"%s"}`, len(p), hex.EncodeToString(sum[:]))
	if got := outputJSON(t, out); got != want {
		t.Errorf("output %s, want %s", got, want)
	}
	if !bytes.Equal(p, FileImage()) {
		t.Error("image is not deterministic")
	}
	ctx = newFakeContext(context.Background(), File, `{"format":"random","bytes":5}`, 1)
	if _, err := streamFile(ctx); err != nil || len(ctx.puts) != 1 || !bytes.Equal(ctx.puts[0], FilePayload(5)) {
		t.Errorf(`{"format":"random","bytes":5}: %v, puts %x`, err, ctx.puts)
	}
}

func TestFlaky(t *testing.T) {
	for attempt := 1; attempt <= 3; attempt++ {
		ctx := newFakeContext(context.Background(), Flaky, `{"failAttempts":2}`, attempt)
		out, err := flaky(ctx)
		if len(ctx.puts) != 1 || string(ctx.puts[0]) != fmt.Sprintf("attempt %d", attempt) {
			t.Errorf("attempt %d streamed %q", attempt, ctx.puts)
		}
		if attempt <= 2 {
			if err == nil || runnel.IsNonRetryable(err) {
				t.Errorf("attempt %d: %v, want a retryable failure", attempt, err)
			}
			continue
		}
		if err != nil || outputJSON(t, out) != `{"attempts":3}` {
			t.Errorf("attempt %d: %v, %v", attempt, out, err)
		}
	}
	// The default fails once.
	if _, err := flaky(newFakeContext(context.Background(), Flaky, `{}`, 1)); err == nil {
		t.Error("default input: attempt 1 succeeded")
	}
	if _, err := flaky(newFakeContext(context.Background(), Flaky, `{}`, 2)); err != nil {
		t.Errorf("default input: attempt 2: %v", err)
	}
}

func TestSlow(t *testing.T) {
	t.Parallel()
	ctx := newFakeContext(context.Background(), Slow, `{"seconds":1}`, 1)
	out, err := slow(ctx)
	if err != nil || outputJSON(t, out) != `{"ticks":1}` || len(ctx.puts) != 1 || string(ctx.puts[0]) != "tick 0" {
		t.Errorf("1 second: %v, %v, %q", out, err, ctx.puts)
	}
}

func TestCancellation(t *testing.T) {
	cctx, cancel := context.WithCancel(context.Background())
	cancel()
	for name, fn := range map[string]runnel.StepFunc{Slow: slow, Text: generateText} {
		ctx := newFakeContext(cctx, name, `{"intervalMs":60000}`, 1)
		if _, err := fn(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("%s: %v, want context.Canceled", name, err)
		}
	}
}
