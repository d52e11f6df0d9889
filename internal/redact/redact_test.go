package redact

import (
	"strings"
	"testing"
)

func TestSecrets(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"postgres://u:pw@h:5432/d?sslmode=disable":        "postgres://u:xxxxx@h:5432/d?sslmode=disable",
		"postgres://u@h/d?password=pw":                    "postgres://u@h/d?password=xxxxx",
		"host=h user=u password=pw dbname=d":              "host=h user=u password=xxxxx dbname=d",
		"host=h password = 'p w\\'x' dbname=d":            "host=h password = xxxxx dbname=d",
		"postgresql://h/d?search_path=t_1&sslmode=prefer": "postgresql://h/d?search_path=t_1&sslmode=prefer",
		// Any scheme: a typo is when the URL gets printed.
		"postgress://u:pw@h/db":  "postgress://u:xxxxx@h/db",
		"mysql://root:hunter2@x": "mysql://root:xxxxx@x",
		"sqlite:///var/lib/r.db": "sqlite:///var/lib/r.db",
		"sqlite://u:p@/r.db":     "sqlite://u:xxxxx@/r.db",
		// URLs url.Parse refuses still lose their password.
		"postgres://u:p%zz@h/d":          "postgres://u:xxxxx@h/d",
		"postgres://u:pw@h:port/d":       "postgres://u:xxxxx@h:port/d",
		"bad url postgres://u:pw@h/d x":  "bad url postgres://u:xxxxx@h/d x",
		"postgres://u:p@w@h/d%":          "postgres://u:xxxxx@h/d%",
		"plain text, no secret":          "plain text, no secret",
		"postgres://only-user@h/d":       "postgres://only-user@h/d",
		"x://u:pw@h/d?password=pw&a=b%x": "x://u:xxxxx@h/d?password=xxxxx&a=b%x",
	} {
		if got := Secrets(in); got != want {
			t.Errorf("Secrets(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzSecrets: whatever the text, a password placed in a URL's userinfo
// never survives.
func FuzzSecrets(f *testing.F) {
	f.Add("postgres", "u", "h/d?x=1")
	f.Add("postgress", "user", "host:5432/db")
	f.Add("a+b.c-d", "", "%zz")
	f.Fuzz(func(t *testing.T, scheme, user, rest string) {
		const pw = "Sup3rSecr3tPw"
		if !isScheme(scheme) || strings.ContainsAny(user, ":@/?#% \t\n") || strings.ContainsAny(rest, "@") {
			t.Skip()
		}
		got := Secrets(scheme + "://" + user + ":" + pw + "@" + rest)
		if strings.Contains(got, pw) {
			t.Fatalf("password survived: %q", got)
		}
	})
}

func isScheme(s string) bool {
	if s == "" || !(s[0] >= 'a' && s[0] <= 'z' || s[0] >= 'A' && s[0] <= 'Z') {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}
