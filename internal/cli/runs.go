package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/runnel-dev/runnel"
)

func newRunsCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "runs", Short: "Inspect and cancel runs"}
	cmd.AddCommand(newRunsListCommand(), newRunsGetCommand(), newRunsCancelCommand())
	return cmd
}

func newRunsListCommand() *cobra.Command {
	var (
		flags  clientFlags
		opts   runnel.ListRunsOptions
		meta   string
		status string
		output outputFlags
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List runs, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := output.format(cmd)
			if err != nil {
				return err
			}
			if meta != "" {
				m, err := parseMeta([]string{meta})
				if err != nil {
					return err
				}
				for k, v := range m {
					opts.MetaKey, opts.MetaValue = k, v
				}
			}
			opts.Status = runnel.RunStatus(status)
			c, err := flags.client()
			if err != nil {
				return err
			}
			runs, err := c.Admin().ListRuns(cmd.Context(), opts)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if format == outputJSON {
				return writeJSON(out, runs)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "RUN ID\tWORKFLOW\tSTATUS\tCREATED\tDURATION\tMETADATA")
			for _, r := range runs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Workflow, r.Status,
					r.CreatedAt.Local().Format(time.DateTime), duration(r.StartedAt, r.FinishedAt), formatMeta(r.AdditionalMetadata))
			}
			return tw.Flush()
		},
	}
	flags.register(cmd)
	cmd.Flags().StringVar(&opts.Workflow, "workflow", "", "only runs of this workflow")
	cmd.Flags().StringVar(&status, "status", "", "only runs with this status (queued, running, completed, failed, cancelled, timed_out)")
	cmd.Flags().StringVar(&meta, "meta", "", "only runs with this additional metadata key=value")
	cmd.Flags().IntVar(&opts.Limit, "limit", 20, "at most this many runs")
	cmd.Flags().StringVar(&opts.Before, "before", "", "page: only runs older than this run id")
	output.register(cmd)
	return cmd
}

func newRunsGetCommand() *cobra.Command {
	var (
		flags  clientFlags
		output outputFlags
	)
	cmd := &cobra.Command{
		Use:               "get RUN_ID",
		Short:             "Show a run with its steps, attempts and times",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeRunIDs(&flags),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := output.format(cmd)
			if err != nil {
				return err
			}
			c, err := flags.client()
			if err != nil {
				return err
			}
			run, err := c.Admin().GetRun(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if format == outputJSON {
				return writeJSON(cmd.OutOrStdout(), run)
			}
			printRun(cmd.OutOrStdout(), run)
			return nil
		},
	}
	flags.register(cmd)
	output.register(cmd)
	return cmd
}

func newRunsCancelCommand() *cobra.Command {
	var flags clientFlags
	cmd := &cobra.Command{
		Use:               "cancel RUN_ID",
		Short:             "Cancel a run (running steps get their context cancelled)",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeRunIDs(&flags),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := flags.client()
			if err != nil {
				return err
			}
			if err := c.Admin().CancelRun(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "run %s cancelled\n", args[0])
			return nil
		},
	}
	flags.register(cmd)
	return cmd
}

func printRun(out io.Writer, r *runnel.Run) {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Run:\t%s\n", r.ID)
	fmt.Fprintf(tw, "Workflow:\t%s\n", r.Workflow)
	fmt.Fprintf(tw, "Status:\t%s\n", r.Status)
	fmt.Fprintf(tw, "Created:\t%s\n", stamp(r.CreatedAt))
	fmt.Fprintf(tw, "Started:\t%s\n", stamp(r.StartedAt))
	fmt.Fprintf(tw, "Finished:\t%s\n", stamp(r.FinishedAt))
	fmt.Fprintf(tw, "Duration:\t%s\n", duration(r.StartedAt, r.FinishedAt))
	if r.ParentRunID != "" {
		fmt.Fprintf(tw, "Parent run:\t%s\n", r.ParentRunID)
	}
	if len(r.AdditionalMetadata) > 0 {
		fmt.Fprintf(tw, "Metadata:\t%s\n", formatMeta(r.AdditionalMetadata))
	}
	fmt.Fprintf(tw, "Input:\t%s\n", clip(string(r.Input)))
	if len(r.Output) > 0 {
		fmt.Fprintf(tw, "Output:\t%s\n", clip(string(r.Output)))
	}
	if r.Error != "" {
		fmt.Fprintf(tw, "Error:\t%s\n", r.Error)
	}
	tw.Flush()
	fmt.Fprintln(out, "\nSteps:")
	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  STEP\tSTATUS\tATTEMPT\tPARENTS\tSTARTED\tDURATION\tOUTPUT / ERROR")
	for _, s := range r.Steps {
		detail := clip(string(s.Output))
		if s.Error != "" && s.Status != runnel.StepCompleted {
			detail = s.Error
		}
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%s\t%s\t%s\t%s\n", s.Step, s.Status, s.Attempt, strings.Join(s.Parents, ","),
			clock(s.StartedAt), duration(s.StartedAt, s.FinishedAt), detail)
		for _, a := range s.Attempts {
			fmt.Fprintf(tw, "  \t  attempt %d\t%s\t\t%s\t%s\t%s\n", a.Attempt, a.Status,
				clock(a.StartedAt), duration(a.StartedAt, a.FinishedAt), a.Error)
		}
	}
	tw.Flush()
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05.000")
}

func clock(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("15:04:05.000")
}

func duration(start, end time.Time) string {
	if start.IsZero() {
		return "-"
	}
	if end.IsZero() {
		return time.Since(start).Round(time.Millisecond).String() + " (running)"
	}
	return end.Sub(start).Round(time.Millisecond).String()
}

func clip(s string) string {
	if len(s) > 120 {
		return s[:120] + "…"
	}
	return s
}

func formatMeta(m map[string]string) string {
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, ",")
}

func writeJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
