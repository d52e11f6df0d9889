package cli

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/runnel-dev/runnel"
)

// progressView shows a followed run's progress while `runnel run --wait` or
// `--stream` follows it. The progress goes to stderr: stdout carries the
// data (the run's output, or its events), so that it can be piped.
type progressView interface {
	// event applies ev. printData, if not nil, writes the event's line to
	// stdout; the view calls it so that a redrawn status block and the data
	// lines do not overwrite each other on a shared terminal.
	event(ev runnel.Event, printData func() error) error
	// finish shows the run as fetched at the end (nil if that failed) and
	// stops the view. It must be called once, on every path.
	finish(final *runnel.Run)
}

// newProgressView picks the view: a status block redrawn in place when
// stderr is a terminal, else plain lines, one per change of state. With
// --stream off a terminal the event lines on stdout already say everything,
// so the plain view stays quiet.
func newProgressView(p *runProgress, stdout, stderr io.Writer, streaming bool) progressView {
	if width, ok := terminalWidth(stderr); ok {
		return newTerminalView(p, stderr, width, streaming && isTerminal(stdout))
	}
	fmt.Fprintf(stderr, "run %s\n", p.runID)
	return &plainView{p: p, w: stderr, quiet: streaming}
}

// plainView prints a line per change of a step's state, and the run's end.
type plainView struct {
	p     *runProgress
	w     io.Writer
	quiet bool
}

func (v *plainView) event(ev runnel.Event, printData func() error) error {
	line := v.p.apply(ev, time.Now())
	if printData != nil {
		if err := printData(); err != nil {
			return err
		}
	}
	if line != "" && !v.quiet {
		fmt.Fprintln(v.w, line)
	}
	return nil
}

func (v *plainView) finish(*runnel.Run) {}

// terminalView keeps a block of status lines, one for the run and one per
// step, at the bottom of the terminal, redrawing it with ANSI escapes as
// events arrive and on a ticker (for the running times and the spinner).
type terminalView struct {
	w     io.Writer
	width int
	// dataShared: stdout is a terminal too (presumably the same one), so
	// the block is erased before a data line is written and drawn again
	// after it.
	dataShared bool

	mu       sync.Mutex // guards everything below, and p
	p        *runProgress
	drawn    int // lines of the block now on screen
	lastDraw time.Time
	frame    int

	stop chan struct{}
	done chan struct{}
}

// redrawEvery paces redraws: the ticker's period, and the least time
// between two redraws caused by streamed data alone.
const redrawEvery = 100 * time.Millisecond

func newTerminalView(p *runProgress, w io.Writer, width int, dataShared bool) *terminalView {
	v := &terminalView{w: w, width: width, dataShared: dataShared, p: p,
		stop: make(chan struct{}), done: make(chan struct{})}
	v.redraw(time.Now())
	go v.tick()
	return v
}

// tick redraws until finish; the view owns this goroutine.
func (v *terminalView) tick() {
	defer close(v.done)
	t := time.NewTicker(redrawEvery)
	defer t.Stop()
	for {
		select {
		case <-v.stop:
			return
		case now := <-t.C:
			v.mu.Lock()
			v.frame++
			v.redraw(now)
			v.mu.Unlock()
		}
	}
}

func (v *terminalView) event(ev runnel.Event, printData func() error) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	now := time.Now()
	changed := v.p.apply(ev, now) != "" || ev.Type == runnel.EventRunStarted
	if printData != nil {
		if v.dataShared {
			v.erase()
		}
		if err := printData(); err != nil {
			return err
		}
		if v.dataShared {
			v.redraw(now)
			return nil
		}
	}
	if changed || now.Sub(v.lastDraw) >= redrawEvery {
		v.redraw(now)
	}
	return nil
}

func (v *terminalView) finish(final *runnel.Run) {
	close(v.stop)
	<-v.done
	v.mu.Lock()
	defer v.mu.Unlock()
	v.p.seed(final)
	v.redraw(time.Now())
	// The block stays on screen as the run's summary.
}

// erase removes the block: cursor up to its first line, clear to the end
// of the screen.
func (v *terminalView) erase() {
	if v.drawn > 0 {
		fmt.Fprintf(v.w, "\r\x1b[%dA\x1b[J", v.drawn)
		v.drawn = 0
	}
}

func (v *terminalView) redraw(now time.Time) {
	lines := v.p.block(now, v.frame)
	var b strings.Builder
	if v.drawn > 0 {
		fmt.Fprintf(&b, "\r\x1b[%dA\x1b[J", v.drawn)
	}
	for _, l := range lines {
		// One column short of the width: a line that fills the last column
		// wraps on some terminals, and the block's height would be wrong.
		b.WriteString(clipRunes(l, v.width-1))
		b.WriteByte('\n')
	}
	_, _ = io.WriteString(v.w, b.String()) // a terminal that stopped listening loses only the status
	v.drawn, v.lastDraw = len(lines), now
}

var spinner = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

// block renders the status lines: the run, then each step.
func (p *runProgress) block(now time.Time, frame int) []string {
	lines := []string{fmt.Sprintf("run %s  %s  %s  %s", p.runID, p.workflow, statusWord(string(p.status)), p.elapsed(now))}
	if p.err != "" {
		lines[0] += "  " + p.err
	}
	nameWidth := 0
	for _, s := range p.steps {
		nameWidth = max(nameWidth, utf8.RuneCountInString(s.name))
	}
	for _, s := range p.steps {
		icon, state := "·", statusWord(string(s.status))
		switch {
		case s.retrying:
			icon, state = "↻", "retrying"
		case s.status == runnel.StepRunning:
			icon = spinner[frame%len(spinner)]
		case s.status == runnel.StepCompleted:
			icon = "✓"
		case s.status == runnel.StepFailed || s.status == runnel.StepTimedOut:
			icon = "✗"
		case s.status == runnel.StepCancelled:
			icon = "-"
		}
		line := fmt.Sprintf("  %s %-*s  %-9s", icon, nameWidth, s.name, state)
		if s.attempt > 0 {
			line += fmt.Sprintf("  attempt %d  %s%s", s.attempt, s.duration(now), s.streamed("  "))
		}
		if s.err != "" && s.status != runnel.StepCompleted {
			line += "  " + s.err
		}
		lines = append(lines, line)
	}
	return lines
}

func clipRunes(s string, n int) string {
	if n <= 0 || utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
