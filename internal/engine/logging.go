package engine

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"

	"github.com/runnel-dev/runnel/internal/store"
)

// logTransitions logs what a committed transaction did to a run: one line
// per event (stream events aside), carrying the run's id and, for step
// events, the step run's id, attempt and worker. workers maps step run ids
// to the worker that ran them (nil: unknown).
//
// Levels: routine progress is Debug; a run that failed or timed out, and an
// attempt the engine timed out, are Info, as an operator may want to see
// them without tracing every run.
func (e *Engine) logTransitions(events []store.Event, workers map[string]string) {
	for _, ev := range events {
		if ev.Type == store.EventStepStream {
			continue
		}
		level := slog.LevelDebug
		switch ev.Type {
		case store.EventRunFailed, store.EventRunTimedOut, store.EventStepTimedOut:
			level = slog.LevelInfo
		}
		ctx := context.Background()
		if !e.log.Enabled(ctx, level) {
			continue
		}
		msg, status := "run finished", strings.TrimPrefix(ev.Type, "run.")
		if ev.StepRunID != "" {
			msg, status = "step attempt ended", strings.TrimPrefix(ev.Type, "step.")
		}
		attrs := []slog.Attr{
			slog.String("run_id", ev.RunID), slog.String("workflow", ev.Workflow), slog.String("status", status),
		}
		if ev.StepRunID != "" {
			attrs = append(attrs, slog.String("step_run_id", ev.StepRunID), slog.String("step", ev.Step), slog.Int("attempt", ev.Attempt))
			if w := workers[ev.StepRunID]; w != "" {
				attrs = append(attrs, slog.String("worker_id", w))
			}
		}
		// Failures carry {"error": ..., "retrying": ...}; outputs are not
		// logged.
		var details struct {
			Error    string `json:"error"`
			Retrying *bool  `json:"retrying"`
		}
		if ev.Type != store.EventStepCompleted && ev.Type != store.EventRunCompleted && json.Unmarshal(ev.Data, &details) == nil {
			if details.Error != "" {
				attrs = append(attrs, slog.String("error", details.Error))
			}
			if details.Retrying != nil {
				attrs = append(attrs, slog.Bool("retrying", *details.Retrying))
			}
		}
		e.log.LogAttrs(ctx, level, msg, attrs...)
	}
}

// stoppedWorkers maps the step runs a transaction stopped to their workers.
func (rs *runState) stoppedWorkers() map[string]string {
	if len(rs.stopped) == 0 {
		return nil
	}
	m := make(map[string]string, len(rs.stopped))
	for _, st := range rs.stopped {
		m[st.stepRunID] = st.workerID
	}
	return m
}
