package engine

import (
	"strings"
	"unicode/utf8"

	"github.com/runnel-dev/runnel/internal/apierr"
)

// CheckText is the one check every client string passes before it reaches
// the store: valid UTF-8 without NUL. PostgreSQL refuses NUL in text
// columns (an internal error, where SQLite stores it), and text that is not
// UTF-8 would be echoed back raw to clients that cannot decode it, so both
// are refused up front, the same way on both stores, naming the field.
// Errors: InvalidArgument.
func CheckText(field, s string) error {
	if i := strings.IndexByte(s, 0); i >= 0 {
		return apierr.New(apierr.InvalidArgument, "%s contains a NUL character (\\u0000) at byte %d, which is not allowed", field, i)
	}
	if !utf8.ValidString(s) {
		return apierr.New(apierr.InvalidArgument, "%s is not valid UTF-8", field)
	}
	return nil
}

// checkTexts runs CheckText on field/value pairs and returns the first
// refusal.
func checkTexts(pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if err := CheckText(pairs[i], pairs[i+1]); err != nil {
			return err
		}
	}
	return nil
}

// CheckJSONText refuses JSON that is not valid UTF-8 (encoding/json accepts
// it inside strings and would store it as is). NUL can only appear escaped
// (\u0000) in valid JSON, and JSON is stored as bytes, so it is kept.
// Errors: InvalidArgument.
func CheckJSONText(field string, b []byte) error {
	if !utf8.Valid(b) {
		return apierr.New(apierr.InvalidArgument, "%s is not valid UTF-8: JSON text must be UTF-8", field)
	}
	return nil
}

// truncateText shortens client text repeated in an error message.
func truncateText(s string) string {
	if len(s) > 64 {
		s = s[:64]
		for len(s) > 0 && !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
		return s + "…"
	}
	return s
}
