package cli

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/runnel-dev/runnel"
)

// runProgress is what `runnel run --wait/--stream` knows of the run it
// follows, built from the run's events: the state of each step, its
// attempt, and how much it has streamed.
type runProgress struct {
	runID    string
	workflow string
	status   runnel.RunStatus
	err      string
	// Elapsed time is measured on this machine's clock, from the trigger to
	// the terminal event's arrival, so that a remote engine's clock skew
	// cannot show a negative or inflated duration.
	triggered time.Time
	ended     time.Time
	steps     []*stepProgress
}

// stepProgress is the state of one step of the followed run.
type stepProgress struct {
	name    string
	status  runnel.StepStatus
	attempt int
	// retrying: the last attempt failed and another one is queued.
	retrying bool
	err      string
	// chunks and bytes count the step.stream events of the current attempt.
	chunks int
	bytes  int
	// startedLocal is when this machine saw the attempt start, for the
	// running time; started and finished are the engine's times, for the
	// duration of a finished attempt.
	startedLocal      time.Time
	started, finished time.Time
}

func newRunProgress(runID, workflow string, now time.Time) *runProgress {
	return &runProgress{runID: runID, workflow: workflow, status: runnel.RunQueued, triggered: now}
}

// step returns the named step, adding it after the known ones when new.
func (p *runProgress) step(name string) *stepProgress {
	for _, s := range p.steps {
		if s.name == name {
			return s
		}
	}
	s := &stepProgress{name: name, status: runnel.StepPending}
	p.steps = append(p.steps, s)
	return s
}

// listSteps takes the names of the run's steps as fetched from the engine
// before following it (events only name a step once it starts), and
// nothing else: the events, replayed from the run's start, tell each
// step's story. Taking states here too would hide the lines of whatever
// happened before the fetch, such as a first attempt that already failed.
func (p *runProgress) listSteps(r *runnel.Run) {
	if r == nil {
		return
	}
	if p.workflow == "" {
		p.workflow = r.Workflow
	}
	for _, rs := range r.Steps {
		p.step(rs.Step)
	}
}

// seed takes the steps and states of the run as fetched from the engine
// once its events have ended, for the steps that never ran.
func (p *runProgress) seed(r *runnel.Run) {
	if r == nil {
		return
	}
	if p.workflow == "" {
		p.workflow = r.Workflow
	}
	if r.Status.Terminal() || p.status == runnel.RunQueued {
		p.status = r.Status
	}
	if r.Status.Terminal() && p.err == "" {
		p.err = r.Error
	}
	for _, rs := range r.Steps {
		s := p.step(rs.Step)
		if rs.Attempt < s.attempt || (rs.Attempt == s.attempt && s.status.Terminal()) {
			continue // the events already told more
		}
		s.status, s.attempt, s.started, s.finished = rs.Status, rs.Attempt, rs.StartedAt, rs.FinishedAt
		s.retrying = false
		if rs.Status != runnel.StepCompleted {
			s.err = rs.Error
		}
	}
}

// stepFailure is the data of step.failed and step.timed_out events.
type stepFailure struct {
	Error    string `json:"error"`
	Retrying bool   `json:"retrying"`
}

// apply updates the progress with an event, arriving at now. It returns a
// line describing the change for people reading plain output, or "" when
// the event changes no state (streamed data, run.started).
func (p *runProgress) apply(ev runnel.Event, now time.Time) string {
	switch ev.Type {
	case runnel.EventRunStarted:
		p.status = runnel.RunRunning
		return ""
	case runnel.EventRunCompleted, runnel.EventRunFailed, runnel.EventRunCancelled, runnel.EventRunTimedOut:
		p.status, p.ended = runStatusOf(ev.Type), now
		var data struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(ev.Data, &data) // best effort: the line says less without it
		p.err = data.Error
		line := fmt.Sprintf("run %s: %s in %s", p.runID, statusWord(string(p.status)), p.elapsed(now))
		if p.err != "" {
			line += ": " + p.err
		}
		return line
	}
	if ev.Step == "" {
		return ""
	}
	s := p.step(ev.Step)
	if ev.Attempt > s.attempt {
		// A new attempt streams everything again: count afresh.
		s.attempt, s.chunks, s.bytes = ev.Attempt, 0, 0
	}
	if ev.Attempt < s.attempt {
		return "" // a late event of an earlier attempt, replayed in order before the new one's
	}
	switch ev.Type {
	case runnel.EventStepStream:
		s.chunks++
		s.bytes += len(ev.Payload)
		return ""
	case runnel.EventStepStarted:
		s.status, s.retrying, s.err = runnel.StepRunning, false, ""
		s.startedLocal, s.started, s.finished = now, ev.Time, time.Time{}
		return fmt.Sprintf("step %s: running (attempt %d)", s.name, s.attempt)
	case runnel.EventStepCompleted:
		s.status, s.finished = runnel.StepCompleted, ev.Time
		return fmt.Sprintf("step %s: completed (attempt %d, %s%s)", s.name, s.attempt, s.duration(now), s.streamed(", "))
	case runnel.EventStepFailed, runnel.EventStepTimedOut:
		var f stepFailure
		_ = json.Unmarshal(ev.Data, &f) // best effort, as above
		s.err, s.retrying, s.finished = f.Error, f.Retrying, ev.Time
		word := "failed"
		if ev.Type == runnel.EventStepTimedOut {
			word = "timed out"
		}
		if f.Retrying {
			s.status = runnel.StepQueued
			return fmt.Sprintf("step %s: attempt %d %s, retrying: %s", s.name, s.attempt, word, f.Error)
		}
		s.status = runnel.StepFailed
		if ev.Type == runnel.EventStepTimedOut {
			s.status = runnel.StepTimedOut
		}
		return fmt.Sprintf("step %s: %s (attempt %d): %s", s.name, word, s.attempt, f.Error)
	case runnel.EventStepCancelled:
		s.status, s.finished = runnel.StepCancelled, ev.Time
		return fmt.Sprintf("step %s: cancelled (attempt %d)", s.name, s.attempt)
	}
	return ""
}

func runStatusOf(t runnel.EventType) runnel.RunStatus {
	switch t {
	case runnel.EventRunCompleted:
		return runnel.RunCompleted
	case runnel.EventRunFailed:
		return runnel.RunFailed
	case runnel.EventRunCancelled:
		return runnel.RunCancelled
	}
	return runnel.RunTimedOut
}

func statusWord(s string) string {
	if s == string(runnel.RunTimedOut) {
		return "timed out"
	}
	return s
}

// elapsed is the run's time since the trigger, up to its end once ended.
func (p *runProgress) elapsed(now time.Time) string {
	end := now
	if !p.ended.IsZero() {
		end = p.ended
	}
	return roundDuration(end.Sub(p.triggered))
}

// duration is how long the current attempt ran, or has been running.
func (s *stepProgress) duration(now time.Time) string {
	switch {
	case !s.finished.IsZero() && !s.started.IsZero():
		return roundDuration(s.finished.Sub(s.started))
	case !s.startedLocal.IsZero():
		return roundDuration(now.Sub(s.startedLocal))
	}
	return ""
}

// streamed says how much the current attempt streamed, after sep; "" if
// nothing.
func (s *stepProgress) streamed(sep string) string {
	if s.chunks == 0 {
		return ""
	}
	unit := "chunks"
	if s.chunks == 1 {
		unit = "chunk"
	}
	return fmt.Sprintf("%s%d %s, %s", sep, s.chunks, unit, humanBytes(s.bytes))
}

func roundDuration(d time.Duration) string {
	switch {
	case d < 0:
		d = 0
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	}
	return d.Round(100 * time.Millisecond).String()
}

func humanBytes(n int) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}
