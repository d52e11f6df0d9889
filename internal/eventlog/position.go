package eventlog

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"

	"github.com/runnel-dev/runnel/internal/apierr"
)

// Codec turns store positions into the opaque strings clients see, and back.
//
// A client position is "<log tag>.<offset>": the tag is derived from the
// store's log id, so a position that came from another database (a
// different engine, a restored backup of another store) is refused instead of
// being replayed against the wrong log.
type Codec struct {
	tag string
}

// NewCodec returns the codec of the log with the given id.
func NewCodec(logID string) Codec {
	sum := sha256.Sum256([]byte(logID))
	return Codec{tag: hex.EncodeToString(sum[:4])}
}

// Encode returns the client form of a store position.
func (c Codec) Encode(pos int64) string {
	return c.tag + "." + strconv.FormatInt(pos, 10)
}

// Decode parses a client position. It returns an InvalidArgument error that
// says what is wrong for malformed input and for positions of another log.
func (c Codec) Decode(s string) (int64, error) {
	tag, num, ok := strings.Cut(s, ".")
	if !ok || tag == "" || num == "" {
		return 0, apierr.New(apierr.InvalidArgument, "invalid position %q: want the opaque position string of a received event", truncate(s))
	}
	if tag != c.tag {
		return 0, apierr.New(apierr.InvalidArgument, "position %q belongs to another event log (another engine database)", truncate(s))
	}
	pos, err := strconv.ParseInt(num, 10, 64)
	if err != nil || pos < 0 || num[0] == '+' {
		return 0, apierr.New(apierr.InvalidArgument, "invalid position %q: bad offset", truncate(s))
	}
	return pos, nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
