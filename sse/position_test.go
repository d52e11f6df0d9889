package sse

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/runnel-dev/runnel/internal/ssewire"
)

// TestSameFramesAsEngine: the end message has the name the engine's own
// SSE endpoint uses, so one client works with both.
func TestSameFramesAsEngine(t *testing.T) {
	t.Parallel()
	if EndEvent != ssewire.EndEvent {
		t.Fatalf("EndEvent %q, engine's %q", EndEvent, ssewire.EndEvent)
	}
}

func TestResumePosition(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		lastEventID, query string
		want               string
		ok                 bool
	}{
		{"", "", "", true},
		{"", "after=ab12cd34.7", "ab12cd34.7", true},
		{"ab12cd34.9", "after=ab12cd34.7", "ab12cd34.9", true}, // the header is newer
		{" ab12cd34.9 ", "", "ab12cd34.9", true},
		{"   ", "after=ab12cd34.7", "ab12cd34.7", true}, // blank header: absent
		{"", "after=", "", true},
		{"a b", "", "", false},
		{"", "after=a%0Ab", "", false},
		{"", "after=%FF", "", false},
		{"", "after=ab12cd34.7;x", "", false}, // url.ParseQuery would drop it: a replay from the start
		{"", "after=%zz", "", false},
		{"", "mine=a;b&after=ab12cd34.7", "ab12cd34.7", true}, // the backend's own parameters are its business
		{"", "after;x=1", "", false},
		{"", "after=" + strings.Repeat("1", maxPositionLen+1), "", false},
		{"", "after=" + strings.Repeat("1", maxPositionLen), strings.Repeat("1", maxPositionLen), true},
	} {
		r := &http.Request{URL: &url.URL{RawQuery: tc.query}, Header: http.Header{}}
		if tc.lastEventID != "" {
			r.Header.Set("Last-Event-ID", tc.lastEventID)
		}
		got, err := resumePosition(r)
		if (err == nil) != tc.ok || string(got) != tc.want {
			t.Errorf("Last-Event-ID %q, query %q: got %q, %v; want %q, ok=%v", tc.lastEventID, tc.query, got, err, tc.want, tc.ok)
		}
	}
}

// FuzzResumePosition: whatever a client sends as Last-Event-ID or in the
// query, parsing never panics, and what it accepts is a short run of
// visible ASCII, safe to pass to the engine and to echo in a message.
func FuzzResumePosition(f *testing.F) {
	f.Add("ab12cd34.7", "after=ab12cd34.7")
	f.Add("", "after=%zz&after=1")
	f.Add("\x00\r\n", "after=%0D%0Aevent:%20end")
	f.Add("é.1", ";;&&==")
	f.Add(strings.Repeat("9", 200), "after="+strings.Repeat("%", 50))
	f.Fuzz(func(t *testing.T, lastEventID, rawQuery string) {
		r := &http.Request{URL: &url.URL{RawQuery: rawQuery}, Header: http.Header{"Last-Event-Id": {lastEventID}}}
		got, err := resumePosition(r)
		if err != nil {
			if got != "" {
				t.Fatalf("error %v with position %q", err, got)
			}
			return
		}
		if len(got) > maxPositionLen {
			t.Fatalf("accepted %d bytes", len(got))
		}
		for i := 0; i < len(got); i++ {
			if got[i] <= ' ' || got[i] >= 0x7f {
				t.Fatalf("accepted %q", got)
			}
		}
		after, _ := queryParam(rawQuery, "after")
		if got != "" && string(got) != strings.TrimSpace(lastEventID) && string(got) != strings.TrimSpace(after) {
			t.Fatalf("position %q comes from neither input", got)
		}
	})
}
