// Package clock is the time source of the engine's loops: what time it is,
// and timers and tickers to wait with. The engine takes a Clock in its
// configuration so that tests can run its timeouts, heartbeats, backoff and
// retention on a fake clock (package clocktest) that moves only when told.
package clock

import "time"

// Clock tells the time and makes timers and tickers on that time.
type Clock interface {
	// Now returns the current time. The real clock's carries a monotonic
	// reading, so durations between two of its times are safe to compare.
	Now() time.Time
	// NewTimer returns a timer that fires once, d from now.
	NewTimer(d time.Duration) Timer
	// NewTicker returns a ticker that fires every d (d > 0), dropping
	// ticks a slow reader misses, as time.Ticker does.
	NewTicker(d time.Duration) Ticker
}

// Timer is a time.Timer of a Clock.
type Timer interface {
	// C delivers the time the timer fired.
	C() <-chan time.Time
	// Stop prevents the timer from firing; false if it already fired or
	// was stopped.
	Stop() bool
	// Reset makes the timer fire d from now, as time.Timer.Reset (Go
	// 1.23 and later: no stale value is received after Reset).
	Reset(d time.Duration)
}

// Ticker is a time.Ticker of a Clock.
type Ticker interface {
	C() <-chan time.Time
	Stop()
}

// Real returns the system clock.
func Real() Clock { return realClock{} }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

func (realClock) NewTicker(d time.Duration) Ticker { return realTicker{time.NewTicker(d)} }

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time   { return t.t.C }
func (t realTimer) Stop() bool            { return t.t.Stop() }
func (t realTimer) Reset(d time.Duration) { t.t.Reset(d) }

type realTicker struct{ t *time.Ticker }

func (t realTicker) C() <-chan time.Time { return t.t.C }
func (t realTicker) Stop()               { t.t.Stop() }
