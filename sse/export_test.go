package sse

import "time"

func init() {
	// The tests check that a position the engine refuses is answered with
	// 400, which needs the refusal to arrive while the headers are held
	// back; on a loaded test machine that round trip can exceed the
	// production wait.
	headerWait = 5 * time.Second
}
