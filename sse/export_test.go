package sse

import "time"

func init() {
	// The unreachable-engine case waits the whole confirmWait before its
	// 503; a confirmation from a live engine, even a loaded one, takes
	// far less.
	confirmWait = 5 * time.Second
}
