package api

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/runnel-dev/runnel/internal/apierr"
)

// The parsers of outside input never panic, and every refusal is a coded
// client error (never an internal one).

func FuzzParseListQuery(f *testing.F) {
	f.Add("workflow=a&status=completed&meta=k:v&limit=10&before=x")
	f.Add("meta=:&limit=-1")
	f.Add("%zz")
	f.Add("workflow=a;x")
	f.Add("before=garbage")
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := parseQuery(raw)
		if err != nil {
			return
		}
		if _, err := parseListQuery(q); err != nil && apierr.CodeOf(err) != apierr.InvalidArgument {
			t.Fatalf("parseListQuery(%q): %v", raw, err)
		}
	})
}

// parseQuery refuses exactly what url.ParseQuery would drop or fail on,
// with a client error, and otherwise reads the same values; a token's
// value never appears in its error.
func FuzzParseQuery(f *testing.F) {
	f.Add("workflow=a&status=completed")
	f.Add("workflow=a;x")
	f.Add("token=rnl_secret;x")
	f.Add("a=%zz&&b")
	f.Add("=&=x&%3B=%3B")
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := parseQuery(raw)
		want, stdErr := url.ParseQuery(raw)
		if err != nil {
			if apierr.CodeOf(err) != apierr.InvalidArgument {
				t.Fatalf("parseQuery(%q): %v", raw, err)
			}
			if stdErr == nil {
				t.Fatalf("parseQuery(%q) refused what url.ParseQuery reads: %v", raw, err)
			}
			if strings.Contains(err.Error(), `"token=rnl_secret`) {
				t.Fatalf("parseQuery(%q) repeated the token: %v", raw, err)
			}
			return
		}
		if stdErr != nil {
			t.Fatalf("parseQuery(%q) accepted what url.ParseQuery refuses (%v)", raw, stdErr)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("parseQuery(%q) = %v, url.ParseQuery = %v", raw, got, want)
		}
	})
}

func FuzzStreamStart(f *testing.F) {
	f.Add("from=now&types=a,b", "abc.1")
	f.Add("after=x.2", "")
	f.Add("from=%00", "\r\n")
	f.Fuzz(func(t *testing.T, raw, lastEventID string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		h := http.Header{}
		h.Set("Last-Event-ID", lastEventID)
		if _, _, err := streamStart(h, q); err != nil && apierr.CodeOf(err) != apierr.InvalidArgument {
			t.Fatalf("streamStart(%q, %q): %v", raw, lastEventID, err)
		}
	})
}

func FuzzBearerToken(f *testing.F) {
	f.Add("Bearer rnl_abc", "")
	f.Add("", "rnl_x")
	f.Add("Basic Zm9v", "y")
	f.Add("bearer rnl_abc", "")
	f.Fuzz(func(t *testing.T, auth, query string) {
		h := http.Header{}
		h.Set("Authorization", auth)
		tok := BearerToken(h, func(string) string { return query })
		if h.Get("Authorization") == "" && tok != query {
			t.Fatalf("query token %q not used", query)
		}
	})
}

func FuzzDecodeTriggerBody(f *testing.F) {
	f.Add([]byte(`{"input": {"a": 1}, "additionalMetadata": {"k": "v"}}`))
	f.Add([]byte(`{"input": `))
	f.Add([]byte(`[]`))
	f.Add([]byte(` null `))
	f.Add([]byte(`{"additionalMetadata": {"k": 1}} {}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest("POST", "/", bytes.NewReader(body))
		var req triggerRequest
		if err := decodeJSON(httptest.NewRecorder(), r, &req); err != nil {
			switch apierr.CodeOf(err) {
			case apierr.InvalidArgument, apierr.ResourceExhausted:
			default:
				t.Fatalf("decode %q: %v", body, err)
			}
		}
	})
}

// The Durable Streams protocol's inputs: offsets (a position this server
// formatted round-trips; anything else is refused, never a panic),
// producer headers and append bodies.
func FuzzDurableInputs(f *testing.F) {
	f.Add("0000000000000042_0000000000000000", "p1", "0", "7", "application/json", []byte(`[1, [2], {"a": 3}]`))
	f.Add("-1", "", "", "", "text/plain", []byte("x"))
	f.Add("now", "p", "9007199254740992", "-1", "application/json", []byte(`[`))
	f.Add("9999999999999999_0000000000000000", "\u202e", "01", "1e3", "application/json; charset=utf-8", []byte(`[]`))
	f.Fuzz(func(t *testing.T, offset, producer, epoch, seq, contentType string, body []byte) {
		if pos, _, err := parseOffset(offset, true, 5); err == nil && offsetRE.MatchString(offset) {
			if FormatOffset(pos) != offset {
				t.Fatalf("offset %q parsed to %d, formatted back as %q", offset, pos, FormatOffset(pos))
			}
		}
		r := httptest.NewRequest(http.MethodPost, "/v1/stream/s", bytes.NewReader(body))
		r.Header.Set("Producer-Id", producer)
		r.Header.Set("Producer-Epoch", epoch)
		r.Header.Set("Producer-Seq", seq)
		if pr, err := parseProducer(r); err == nil && pr != nil && (pr.Epoch < 0 || pr.Seq < 0 || pr.ID == "") {
			t.Fatalf("producer headers %q %q %q accepted as %+v", producer, epoch, seq, pr)
		}
		if msgs, err := splitMessages(body, isJSONType(contentType), false); err == nil {
			for _, m := range msgs {
				if len(m) == 0 && len(body) > 0 && isJSONType(contentType) {
					t.Fatalf("JSON body %q split into an empty message", body)
				}
			}
		}
	})
}
