package runnel

import (
	"context"
	"math/rand/v2"
	"time"
)

// backoff computes exponentially growing, jittered delays between attempts.
// The zero value is not usable; use newBackoff.
type backoff struct {
	base, max time.Duration
	cur       time.Duration
}

func newBackoff(base, max time.Duration) *backoff {
	return &backoff{base: base, max: max}
}

// next returns the delay before the next attempt: base, 2×base, … up to max,
// each with "equal jitter" (between half and all of it) so that many clients
// dropped at once by an engine restart do not reconnect in lockstep.
func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.base
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	half := b.cur / 2
	if half <= 0 {
		return b.cur
	}
	return half + rand.N(half+1)
}

// reset starts the sequence again after a success.
func (b *backoff) reset() { b.cur = 0 }

// sleep waits for d or until ctx is done; it reports whether the full
// delay passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
