package api

import (
	"net/url"
	"strings"

	"github.com/runnel-dev/runnel/internal/apierr"
)

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
