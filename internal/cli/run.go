package cli

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"strings"
	"time"
	"unicode/utf8"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	"github.com/runnel-dev/runnel"
)

type runOptions struct {
	input  string
	meta   []string
	wait   bool
	stream bool
	json   bool
}

func newRunCommand() *cobra.Command {
	var (
		flags clientFlags
		o     runOptions
	)
	cmd := &cobra.Command{
		Use:   "run WORKFLOW",
		Short: "Trigger a run and print its id (--wait: its output; --stream: its events)",
		Long: `Trigger a run of WORKFLOW and print its run id, alone on stdout, for scripts.

--wait waits for the run to end and prints its output (JSON) on stdout; a run
that does not complete is an error (exit status 1). --stream prints the run's
events on stdout as they happen (--json: one JSON object per line), until it
ends. Both may be given.

While --wait or --stream follows the run, its progress goes to stderr, so that
stdout carries only data: on a terminal, a status block (the run, and each step
with its state, attempt, time and what it streamed) redrawn in place; off a
terminal, with --wait, one plain line per change of a step's state
("step generate: running (attempt 1)") and one for the run's end. With --stream
off a terminal the event lines already carry that, so nothing more is printed.

An unknown WORKFLOW is refused with the registered ones; ` + "`runnel workflows list`" + `
shows them, and shell completion offers their names.`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeWorkflowNames(&flags),
		RunE: func(cmd *cobra.Command, args []string) error {
			meta, err := parseMeta(o.meta)
			if err != nil {
				return err
			}
			var input json.RawMessage
			if o.input != "" {
				if !json.Valid([]byte(o.input)) {
					return fmt.Errorf("invalid --input: not valid JSON: %s", o.input)
				}
				input = json.RawMessage(o.input)
			}
			c, err := flags.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var opts []runnel.RunOption
			if meta != nil {
				opts = append(opts, runnel.WithAdditionalMetadata(meta))
			}
			runID, err := c.Admin().RunWorkflow(ctx, args[0], input, opts...)
			if connect.CodeOf(err) == connect.CodeNotFound {
				return withHint(err, unknownWorkflowHint(ctx, c, args[0]))
			}
			if err != nil {
				return err
			}
			if !o.wait && !o.stream {
				fmt.Fprintln(cmd.OutOrStdout(), runID)
				return nil
			}
			return followRun(ctx, c, runID, args[0], o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	flags.register(cmd)
	cmd.Flags().StringVar(&o.input, "input", "", "run input as JSON (default {})")
	cmd.Flags().StringArrayVar(&o.meta, "meta", nil, "additional metadata key=value (repeatable)")
	cmd.Flags().BoolVar(&o.wait, "wait", false, "wait for the run to end and print its output (progress on stderr)")
	cmd.Flags().BoolVar(&o.stream, "stream", false, "print the run's events as they happen, until it ends (progress on stderr)")
	cmd.Flags().BoolVar(&o.json, "json", false, "with --stream: one JSON object per event")
	return cmd
}

// followRun follows a triggered run to its end for --wait and --stream:
// events (with --stream) and the output (with --wait) on stdout, progress
// on stderr.
func followRun(ctx context.Context, c *runnel.Client, runID, workflow string, o runOptions, out, errOut io.Writer) error {
	p := newRunProgress(runID, workflow, time.Now())
	if run, err := c.Admin().GetRun(ctx, runID); err == nil {
		p.listSteps(run) // the steps, before any has started; without it they appear as they start
	}
	view := newProgressView(p, out, errOut, o.stream)
	finished := false
	defer func() {
		if !finished {
			view.finish(nil)
		}
	}()
	for ev, err := range c.Listener().Stream(ctx, runID) {
		if err != nil {
			return err
		}
		var printData func() error
		if o.stream {
			printData = func() error { return printEvent(out, ev, o.json, false) }
		}
		if err := view.event(ev, printData); err != nil {
			return err
		}
	}
	run, err := c.Admin().GetRun(ctx, runID)
	if err != nil {
		return err
	}
	// The status block is complete before the output is written below it.
	view.finish(run)
	finished = true
	if !o.wait {
		return nil
	}
	if run.Status != runnel.RunCompleted {
		return fmt.Errorf("run %s %s: %s", runID, statusWord(string(run.Status)), run.Error)
	}
	_, err = fmt.Fprintln(out, string(run.Output))
	return err
}

func newStreamCommand() *cobra.Command {
	var (
		flags   clientFlags
		from    string
		types   string
		streams string
		meta    string
		asObj   bool
	)
	cmd := &cobra.Command{
		Use:               "stream RUN_ID | --meta KEY=VALUE",
		Short:             "Print a run's events as they happen, ending when the run ends; --meta: every run carrying a metadata pair, until interrupted",
		ValidArgsFunction: completeRunIDs(&flags),
		Args: func(cmd *cobra.Command, args []string) error {
			if (meta == "") == (len(args) == 0) || len(args) > 1 {
				return fmt.Errorf("give exactly one of RUN_ID or --meta key=value (got %d arguments)", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			var tt []runnel.EventType
			if types != "" {
				for _, t := range strings.Split(types, ",") {
					tt = append(tt, runnel.EventType(strings.TrimSpace(t)))
				}
			}
			var key, value string
			if meta != "" {
				if _, err := parseMeta([]string{meta}); err != nil {
					return err
				}
				key, value, _ = strings.Cut(meta, "=")
			}
			c, err := flags.client()
			if err != nil {
				return err
			}
			ctx, out := cmd.Context(), cmd.OutOrStdout()
			if meta == "" {
				opts := subscribeOptions(from, tt)
				if streams != "" {
					opts = append(opts, runnel.Streams(strings.Split(streams, ",")...))
				}
				return printSeq(c.Listener().Stream(ctx, args[0], opts...), asObj, false, out)
			}
			if streams != "" || from == "latest" {
				return errors.New("--streams and --from latest follow one run's streams: give RUN_ID instead of --meta")
			}
			err = printSeq(c.Listener().StreamByAdditionalMetadata(ctx, key, value, subscribeOptions(from, tt)...), asObj, true, out)
			if err != nil && ctx.Err() != nil {
				return nil // interrupted: the normal end of a subscription that never ends by itself
			}
			return err
		},
	}
	flags.register(cmd)
	cmd.Flags().StringVar(&meta, "meta", "", "instead of RUN_ID, follow every run whose additional metadata has key=value (never ends by itself)")
	cmd.Flags().StringVar(&from, "from", "start", "where to start: start, now, latest (the newest stream event, included), or a position printed earlier")
	cmd.Flags().StringVar(&types, "types", "", "only these event types, comma-separated (e.g. step.stream,run.completed)")
	cmd.Flags().StringVar(&streams, "streams", "", "only the stream events of these named streams, comma-separated (default: the unnamed one)")
	cmd.Flags().BoolVar(&asObj, "json", false, "one JSON object per line (the SSE data object plus \"position\")")
	return cmd
}

// subscribeOptions turns the --from and --types flags into options.
func subscribeOptions(from string, types []runnel.EventType) []runnel.SubscribeOption {
	var opts []runnel.SubscribeOption
	switch from {
	case "", "start":
		opts = append(opts, runnel.FromStart())
	case "now":
		opts = append(opts, runnel.FromNow())
	case "latest":
		opts = append(opts, runnel.FromLatest())
	default:
		opts = append(opts, runnel.After(runnel.Position(from)))
	}
	if len(types) > 0 {
		opts = append(opts, runnel.WithTypes(types...))
	}
	return opts
}

// printSeq prints a subscription's events, one line (or JSON object) each;
// withRun starts each line with the event's run, for subscriptions that
// interleave runs.
func printSeq(events iter.Seq2[runnel.Event, error], asJSON, withRun bool, out io.Writer) error {
	for ev, err := range events {
		if err != nil {
			return err
		}
		if err := printEvent(out, ev, asJSON, withRun); err != nil {
			return err
		}
	}
	return nil
}

// printEvent prints one event as a line, or as a JSON object on a line.
func printEvent(out io.Writer, ev runnel.Event, asJSON, withRun bool) error {
	if asJSON {
		b, err := json.Marshal(eventJSON(ev))
		if err != nil {
			return fmt.Errorf("encode event %s: %w", ev.Position, err)
		}
		_, err = fmt.Fprintln(out, string(b))
		return err
	}
	if withRun {
		fmt.Fprint(out, ev.RunID, "  ")
	}
	_, err := fmt.Fprintln(out, eventLine(ev))
	return err
}

// eventJSON is the SSE data object of an event plus its position.
func eventJSON(ev runnel.Event) map[string]any {
	m := map[string]any{
		"position": ev.Position, "runId": ev.RunID, "workflow": ev.Workflow, "type": ev.Type,
		"timestamp": ev.Time,
	}
	if ev.StepRunID != "" {
		m["stepRunId"], m["step"], m["attempt"] = ev.StepRunID, ev.Step, ev.Attempt
	}
	if ev.Stream != "" {
		m["stream"] = ev.Stream
	}
	if len(ev.Data) > 0 {
		var data map[string]any
		if json.Unmarshal(ev.Data, &data) == nil {
			for k, v := range data {
				m[k] = v
			}
		}
	}
	if ev.Type == runnel.EventStepStream {
		if utf8.Valid(ev.Payload) {
			m["payload"] = string(ev.Payload)
		} else {
			m["payload"], m["encoding"] = base64.StdEncoding.EncodeToString(ev.Payload), "base64"
		}
	}
	return m
}

func eventLine(ev runnel.Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s  %-15s", ev.Time.Format("15:04:05.000"), ev.Type)
	if ev.Step != "" {
		fmt.Fprintf(&b, " %s#%d", ev.Step, ev.Attempt)
	}
	if ev.Stream != "" {
		fmt.Fprintf(&b, " >%s", ev.Stream)
	}
	switch {
	case ev.Type == runnel.EventStepStream && utf8.Valid(ev.Payload) && len(ev.Payload) <= 200:
		fmt.Fprintf(&b, " %q", ev.Payload)
	case ev.Type == runnel.EventStepStream:
		fmt.Fprintf(&b, " <%d bytes>", len(ev.Payload))
	case len(ev.Data) > 0:
		d := string(ev.Data)
		if len(d) > 200 {
			d = d[:200] + "…"
		}
		fmt.Fprintf(&b, " %s", d)
	}
	fmt.Fprintf(&b, "  [%s]", ev.Position)
	return b.String()
}
