// Package redact hides credentials in connection strings before they reach
// an error message or a log line. Every path that shows a database URL or
// other address given by the user goes through Secrets, whatever its scheme
// (a mistyped scheme is exactly when the URL gets printed).
package redact

import (
	"net/url"
	"regexp"
	"strings"
)

// Mask replaces every hidden secret.
const Mask = "xxxxx"

var (
	// userinfo of anything that looks like scheme://user:pass@host, for
	// text url.Parse refuses: everything up to the last '@' before the path.
	userinfo = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.\-]*://)([^/?#\x20\t\n]*)@`)
	// password=... in key=value connection strings (libpq form) and in
	// query strings.
	passwordKV = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&]+)`)
)

// Secrets returns s with the credentials of any URL or key=value connection
// string in it hidden: the password of scheme://user:password@host (any
// scheme, also one that does not parse), a password query parameter, and
// password=... pairs. Text without credentials is returned unchanged.
func Secrets(s string) string {
	if strings.Contains(s, "://") && !strings.ContainsAny(s, " \t\n") {
		if u, err := url.Parse(s); err == nil && u.Scheme != "" {
			// Edit the raw query in place: re-encoding it would drop or
			// reorder the pairs url.ParseQuery cannot read.
			u.RawQuery = passwordKV.ReplaceAllString(u.RawQuery, "${1}"+Mask)
			return u.Redacted()
		}
	}
	s = userinfo.ReplaceAllStringFunc(s, func(m string) string {
		sub := userinfo.FindStringSubmatch(m)
		user, _, hasPass := strings.Cut(sub[2], ":")
		if !hasPass {
			return m
		}
		return sub[1] + user + ":" + Mask + "@"
	})
	return passwordKV.ReplaceAllString(s, "${1}"+Mask)
}
