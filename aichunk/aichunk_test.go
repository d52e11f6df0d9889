package aichunk_test

import (
	"strings"
	"testing"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/aichunk"
)

type puts []string

func (p *puts) PutStream(b []byte, _ ...runnel.PutOption) error {
	*p = append(*p, string(b))
	return nil
}

func TestWriter(t *testing.T) {
	var p puts
	w := aichunk.NewWriter(&p)
	w.Start()
	id := w.TextStart()
	w.TextDelta(id, "Hello, ")
	w.TextDelta(id, "world")
	w.TextEnd(id)
	w.ToolCall("call-1", "weather", map[string]string{"city": "Oslo"}, map[string]int{"celsius": 3})
	if err := w.Finish("stop"); err != nil {
		t.Fatal(err)
	}
	want := `{"type":"start"}
{"type":"start-step"}
{"id":"0","type":"text-start"}
{"delta":"Hello, ","id":"0","type":"text-delta"}
{"delta":"world","id":"0","type":"text-delta"}
{"id":"0","type":"text-end"}
{"input":{"city":"Oslo"},"toolCallId":"call-1","toolName":"weather","type":"tool-input-available"}
{"output":{"celsius":3},"toolCallId":"call-1","type":"tool-output-available"}
{"type":"finish-step"}
{"finishReason":"stop","type":"finish"}`
	if got := strings.Join(p, "\n"); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}
