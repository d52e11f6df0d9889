package eventlog

import (
	"github.com/runnel-dev/runnel/internal/apierr"
)

// DefaultStream is how requests name a run's unnamed stream, stored as "".
const DefaultStream = "default"

// maxStreamName bounds a stream name, so names stay cheap to store on every
// event and to show.
const maxStreamName = 64

// StreamName checks a stream name from a request and returns it as stored:
// "" and "default" are the default stream (""); any other name has 1-64
// characters from [A-Za-z0-9._-], so it is safe in URLs, SSE fields and
// comma-separated lists. Errors: InvalidArgument naming the name.
func StreamName(name string) (string, error) {
	if name == "" || name == DefaultStream {
		return "", nil
	}
	if len(name) > maxStreamName {
		return "", apierr.New(apierr.InvalidArgument, "stream name of %d bytes is longer than %d", len(name), maxStreamName)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return "", apierr.New(apierr.InvalidArgument, "invalid stream name %q: use 1-%d characters from A-Z a-z 0-9 . _ -", name, maxStreamName)
		}
	}
	return name, nil
}

// DisplayStreamName is a stored stream name as people and requests spell it.
func DisplayStreamName(stored string) string {
	if stored == "" {
		return DefaultStream
	}
	return stored
}
