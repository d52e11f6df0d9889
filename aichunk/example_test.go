package aichunk_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/aichunk"
)

// answer is the Go step of docs/ai-chat.md.
func answer(ctx runnel.Context) (any, error) {
	w := aichunk.NewWriter(ctx)
	w.Start()
	id := w.TextStart()
	for _, word := range strings.Fields("It is 3 degrees in Oslo.") {
		w.TextDelta(id, word+" ")
	}
	w.TextEnd(id)
	w.ToolCall("call-1", "weather", map[string]string{"city": "Oslo"}, map[string]int{"celsius": 3})
	return map[string]string{"done": "yes"}, w.Finish("stop")
}

var _ runnel.StepFunc = answer

// TestGuideSnippet: the guide's Go snippet is answer, as compiled here.
func TestGuideSnippet(t *testing.T) {
	guide, err := os.ReadFile("../docs/ai-chat.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?ms)^```go\n(.*?)^```$").FindSubmatch(guide)
	if m == nil || !strings.Contains(string(src), string(m[1])) {
		t.Fatalf("docs/ai-chat.md's Go snippet is not the answer function of aichunk/example_test.go")
	}
}
