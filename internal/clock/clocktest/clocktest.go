// Package clocktest provides a fake clock.Clock for tests: time stands still
// until the test advances it, and timers and tickers fire, in the order of
// their deadlines, during Advance and nowhere else.
package clocktest

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/runnel-dev/runnel/internal/clock"
)

// Fake is a clock that moves only when Advance (or Set) is called. Safe for
// concurrent use.
type Fake struct {
	mu     sync.Mutex
	now    time.Time
	seq    int
	timers []*fakeTimer // armed timers and tickers
	// changed is closed (and replaced) whenever a timer is armed or
	// disarmed, for WaitTimers.
	changed chan struct{}
}

var _ clock.Clock = (*Fake)(nil)

// NewFake returns a fake clock showing start.
func NewFake(start time.Time) *Fake {
	return &Fake{now: start, changed: make(chan struct{})}
}

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// NewTimer returns a timer firing at Now()+d.
func (f *Fake) NewTimer(d time.Duration) clock.Timer {
	t := &fakeTimer{f: f, c: make(chan time.Time, 1)}
	t.Reset(d)
	return t
}

// NewTicker returns a ticker firing every d from Now().
func (f *Fake) NewTicker(d time.Duration) clock.Ticker {
	if d <= 0 {
		panic("clocktest: non-positive interval for NewTicker")
	}
	t := &fakeTimer{f: f, c: make(chan time.Time, 1), period: d}
	t.Reset(d)
	return fakeTicker{t}
}

// fakeTicker is a ticker: a fakeTimer with a period, whose Stop returns
// nothing.
type fakeTicker struct{ t *fakeTimer }

func (t fakeTicker) C() <-chan time.Time { return t.t.c }
func (t fakeTicker) Stop()               { t.t.Stop() }

// Advance moves the clock forward by d, firing every timer and ticker due
// on the way in deadline order (the clock shows each deadline as it fires).
// A ticker fires at most once per Advance if its reader has not taken the
// previous tick, like time.Ticker.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.setLocked(f.now.Add(d))
}

// Set moves the clock to t (not backwards), firing what is due.
func (f *Fake) Set(t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t.After(f.now) {
		f.setLocked(t)
	}
}

func (f *Fake) setLocked(target time.Time) {
	for {
		i := f.nextDueLocked(target)
		if i < 0 {
			break
		}
		t := f.timers[i]
		f.now = t.when
		select {
		case t.c <- t.when:
		default: // the reader missed the previous one; drop it
		}
		if t.period > 0 {
			t.when = t.when.Add(t.period)
			t.seq = f.nextSeqLocked()
		} else {
			f.removeLocked(t)
		}
	}
	f.now = target
}

// nextDueLocked returns the index of the armed timer due first at or
// before target (ties: the one armed first), or -1.
func (f *Fake) nextDueLocked(target time.Time) int {
	best := -1
	for i, t := range f.timers {
		if t.when.After(target) {
			continue
		}
		if best < 0 || t.when.Before(f.timers[best].when) ||
			(t.when.Equal(f.timers[best].when) && t.seq < f.timers[best].seq) {
			best = i
		}
	}
	return best
}

func (f *Fake) nextSeqLocked() int {
	f.seq++
	return f.seq
}

func (f *Fake) removeLocked(t *fakeTimer) bool {
	i := slices.Index(f.timers, t)
	if i < 0 {
		return false
	}
	f.timers = slices.Delete(f.timers, i, i+1)
	f.signalLocked()
	return true
}

func (f *Fake) signalLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// Timers returns how many timers and tickers are armed.
func (f *Fake) Timers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.timers)
}

// WaitTimers waits until at least n timers and tickers are armed, so a test
// advances the clock only once the goroutines it means to wake wait on it.
// It returns ctx's error if ctx ends first.
func (f *Fake) WaitTimers(ctx context.Context, n int) error {
	for {
		f.mu.Lock()
		armed, changed := len(f.timers), f.changed
		f.mu.Unlock()
		if armed >= n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

type fakeTimer struct {
	f      *Fake
	c      chan time.Time
	period time.Duration // tickers
	when   time.Time     // guarded by f.mu
	seq    int           // guarded by f.mu
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	return t.f.removeLocked(t)
}

// Reset re-arms the timer d from now and drops a tick not yet received, as
// time.Timer.Reset does since Go 1.23.
func (t *fakeTimer) Reset(d time.Duration) {
	f := t.f
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-t.c:
	default:
	}
	t.when = f.now.Add(d)
	t.seq = f.nextSeqLocked()
	if !slices.Contains(f.timers, t) {
		f.timers = append(f.timers, t)
	}
	f.signalLocked()
	if d <= 0 {
		f.setLocked(f.now) // due now
	}
}

// Offset returns the real clock moved forward by *offset nanoseconds, read
// at each call: for end-to-end tests that jump ahead (expire a token)
// while timers keep real time.
func Offset(offset *atomic.Int64) clock.Clock {
	return offsetClock{Clock: clock.Real(), offset: offset}
}

type offsetClock struct {
	clock.Clock
	offset *atomic.Int64
}

func (c offsetClock) Now() time.Time { return c.Clock.Now().Add(time.Duration(c.offset.Load())) }
