package cli

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"strings"
	"unicode/utf8"

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
		Args:  cobra.ExactArgs(1),
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
			if err != nil {
				return err
			}
			out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
			if !o.wait && !o.stream {
				fmt.Fprintln(out, runID)
				return nil
			}
			fmt.Fprintf(errOut, "run %s\n", runID)
			if o.stream {
				if err := printEvents(ctx, c, runID, nil, "", o.json, out); err != nil {
					return err
				}
			} else {
				// Wait for the terminal event without printing the stream.
				for _, err := range c.Listener().Stream(ctx, runID, runnel.WithTypes(terminalTypes...)) {
					if err != nil {
						return err
					}
				}
			}
			run, err := c.Admin().GetRun(ctx, runID)
			if err != nil {
				return err
			}
			if o.wait {
				if run.Status != runnel.RunCompleted {
					return fmt.Errorf("run %s %s: %s", runID, run.Status, run.Error)
				}
				fmt.Fprintln(out, string(run.Output))
			}
			return nil
		},
	}
	flags.register(cmd)
	cmd.Flags().StringVar(&o.input, "input", "", "run input as JSON (default {})")
	cmd.Flags().StringArrayVar(&o.meta, "meta", nil, "additional metadata key=value (repeatable)")
	cmd.Flags().BoolVar(&o.wait, "wait", false, "wait for the run to end and print its output")
	cmd.Flags().BoolVar(&o.stream, "stream", false, "print the run's events as they happen, until it ends")
	cmd.Flags().BoolVar(&o.json, "json", false, "with --stream: one JSON object per event")
	return cmd
}

var terminalTypes = []runnel.EventType{
	runnel.EventRunCompleted, runnel.EventRunFailed, runnel.EventRunCancelled, runnel.EventRunTimedOut,
}

func newStreamCommand() *cobra.Command {
	var (
		flags clientFlags
		from  string
		types string
		meta  string
		asObj bool
	)
	cmd := &cobra.Command{
		Use:   "stream RUN_ID | --meta KEY=VALUE",
		Short: "Print a run's events as they happen, ending when the run ends; --meta: every run carrying a metadata pair, until interrupted",
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
				return printEvents(ctx, c, args[0], tt, from, asObj, out)
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
	cmd.Flags().StringVar(&from, "from", "start", "where to start: start, now, or a position printed earlier")
	cmd.Flags().StringVar(&types, "types", "", "only these event types, comma-separated (e.g. step.stream,run.completed)")
	cmd.Flags().BoolVar(&asObj, "json", false, "one JSON object per line (the SSE data object plus \"position\")")
	return cmd
}

func printEvents(ctx context.Context, c *runnel.Client, runID string, types []runnel.EventType, from string, asJSON bool, out io.Writer) error {
	return printSeq(c.Listener().Stream(ctx, runID, subscribeOptions(from, types)...), asJSON, false, out)
}

// subscribeOptions turns the --from and --types flags into options.
func subscribeOptions(from string, types []runnel.EventType) []runnel.SubscribeOption {
	var opts []runnel.SubscribeOption
	switch from {
	case "", "start":
		opts = append(opts, runnel.FromStart())
	case "now":
		opts = append(opts, runnel.FromNow())
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
		if asJSON {
			b, err := json.Marshal(eventJSON(ev))
			if err != nil {
				return err
			}
			fmt.Fprintln(out, string(b))
			continue
		}
		if withRun {
			fmt.Fprint(out, ev.RunID, "  ")
		}
		fmt.Fprintln(out, eventLine(ev))
	}
	return nil
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
