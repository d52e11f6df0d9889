package api

import "time"

// micros encodes a time for the wire; the zero time is 0 (unset).
func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}
