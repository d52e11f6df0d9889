package api

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/runnel-dev/runnel/internal/apierr"
	"github.com/runnel-dev/runnel/internal/engine"
)

// listingQuery is the start of a read-only listing (workers, streams): an
// API or admin token, not a browser token, and a query that has only the
// given parameters (and token=, which authenticates). On a failure it has
// written the error and returns false.
func (h *HTTP) listingQuery(w http.ResponseWriter, r *http.Request, p engine.Principal, params ...string) (url.Values, bool) {
	if err := requireWriter(p); err != nil {
		h.writeError(w, r, err)
		return nil, false
	}
	q, err := parseQuery(r.URL.RawQuery)
	if err != nil {
		h.writeError(w, r, err)
		return nil, false
	}
	for key := range q {
		if key == "token" || slices.Contains(params, key) {
			continue
		}
		want := "none are taken"
		if len(params) > 0 {
			want = fmt.Sprintf("want %s", strings.Join(params, ", "))
		}
		h.writeError(w, r, apierr.New(apierr.InvalidArgument, "unknown query parameter %q (%s)", key, want))
		return nil, false
	}
	return q, true
}

// parseQuery reads a request's query string strictly. Go's url.ParseQuery
// skips a pair it cannot read (one holding ';', or a bad %-escape) and
// goes on, so ?workflow=a;x would silently list every workflow: here such
// a pair is refused (InvalidArgument) with its name, so the client learns
// its filter was not applied. A token's value is never repeated.
func parseQuery(raw string) (url.Values, error) {
	q := url.Values{}
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if pair == "" {
			continue
		}
		rawKey, rawValue, _ := strings.Cut(pair, "=")
		key, err := url.QueryUnescape(rawKey)
		if err != nil {
			return nil, apierr.New(apierr.InvalidArgument, "invalid query parameter name %q: bad %%-escape", truncateQuery(rawKey))
		}
		shown := pair
		if key == "token" {
			shown = "token=…"
		}
		if strings.Contains(pair, ";") {
			return nil, apierr.New(apierr.InvalidArgument, "invalid query %q: ';' does not separate parameters (use '&'; write a literal ';' as %%3B)", truncateQuery(shown))
		}
		value, err := url.QueryUnescape(rawValue)
		if err != nil {
			return nil, apierr.New(apierr.InvalidArgument, "invalid query %q: bad %%-escape in the value of %q", truncateQuery(shown), truncateQuery(key))
		}
		q[key] = append(q[key], value)
	}
	return q, nil
}

func truncateQuery(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
