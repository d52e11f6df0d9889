package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/runnel-dev/runnel"
)

func newWorkflowsCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "workflows", Short: "Inspect the workflows workers have registered"}
	cmd.AddCommand(newWorkflowsListCommand())
	return cmd
}

func newWorkflowsListCommand() *cobra.Command {
	var (
		flags  clientFlags
		output outputFlags
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the registered workflows with their steps",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := output.format(cmd)
			if err != nil {
				return err
			}
			c, err := flags.client()
			if err != nil {
				return err
			}
			wfs, err := c.Admin().ListWorkflows(cmd.Context())
			if err != nil {
				return err
			}
			slices.SortFunc(wfs, func(a, b runnel.WorkflowInfo) int { return strings.Compare(a.Name, b.Name) })
			if format == outputJSON {
				return writeJSON(cmd.OutOrStdout(), workflowsJSON(wfs))
			}
			return printWorkflows(cmd.OutOrStdout(), wfs)
		},
	}
	flags.register(cmd)
	output.register(cmd)
	return cmd
}

// workflowJSON is a workflow as the HTTP API's GET /api/v1/workflows
// describes it.
type workflowJSON struct {
	Name     string     `json:"name"`
	Steps    []stepJSON `json:"steps"`
	OnEvents []string   `json:"onEvents,omitempty"`
}

type stepJSON struct {
	Name      string   `json:"name"`
	Parents   []string `json:"parents,omitempty"`
	Retries   int      `json:"retries,omitempty"`
	BackoffMs int64    `json:"backoffMs,omitempty"`
	TimeoutMs int64    `json:"timeoutMs,omitempty"`
}

func workflowsJSON(wfs []runnel.WorkflowInfo) []workflowJSON {
	out := make([]workflowJSON, 0, len(wfs))
	for _, wf := range wfs {
		w := workflowJSON{Name: wf.Name, Steps: []stepJSON{}, OnEvents: wf.OnEvents}
		for _, s := range wf.Steps {
			w.Steps = append(w.Steps, stepJSON{Name: s.Name, Parents: s.Parents, Retries: s.Retries,
				BackoffMs: s.Backoff.Milliseconds(), TimeoutMs: s.Timeout.Milliseconds()})
		}
		out = append(out, w)
	}
	return out
}

func printWorkflows(out io.Writer, wfs []runnel.WorkflowInfo) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKFLOW\tSTEPS\tON EVENTS")
	for _, wf := range wfs {
		steps := make([]string, 0, len(wf.Steps))
		for _, s := range wf.Steps {
			desc := s.Name
			var extra []string
			if len(s.Parents) > 0 {
				extra = append(extra, "after "+strings.Join(s.Parents, "+"))
			}
			if s.Retries > 0 {
				extra = append(extra, fmt.Sprintf("retries %d", s.Retries))
			}
			if s.Timeout > 0 {
				extra = append(extra, "timeout "+s.Timeout.String())
			}
			if len(extra) > 0 {
				desc += " (" + strings.Join(extra, ", ") + ")"
			}
			steps = append(steps, desc)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", wf.Name, strings.Join(steps, ", "), strings.Join(wf.OnEvents, ","))
	}
	return tw.Flush()
}

// completionTimeout bounds the engine calls made while the shell waits for
// completions: a slow or absent engine must not hang the prompt.
const completionTimeout = 2 * time.Second

// completeWorkflowNames completes a workflow name from the engine's
// registered workflows; with no engine it offers nothing (and no files).
func completeWorkflowNames(flags *clientFlags) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		c, err := flags.client()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), completionTimeout)
		defer cancel()
		wfs, err := c.Admin().ListWorkflows(ctx)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []cobra.Completion
		for _, wf := range wfs {
			if strings.HasPrefix(wf.Name, toComplete) {
				steps := make([]string, 0, len(wf.Steps))
				for _, s := range wf.Steps {
					steps = append(steps, s.Name)
				}
				out = append(out, cobra.CompletionWithDesc(wf.Name, "steps: "+strings.Join(steps, ", ")))
			}
		}
		slices.Sort(out)
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// completeRunIDs completes a run id from the most recent runs, described
// by workflow and status.
func completeRunIDs(flags *clientFlags) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		c, err := flags.client()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), completionTimeout)
		defer cancel()
		runs, err := c.Admin().ListRuns(ctx, runnel.ListRunsOptions{Limit: 50})
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []cobra.Completion
		for _, r := range runs {
			if strings.HasPrefix(r.ID, toComplete) {
				out = append(out, cobra.CompletionWithDesc(r.ID, fmt.Sprintf("%s %s", r.Workflow, r.Status)))
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveKeepOrder
	}
}

// unknownWorkflowHint is the hint for a run of a workflow the engine does
// not know. The engine's error already names the registered workflows; the
// hint suggests the closest name, or how to get any registered at all.
func unknownWorkflowHint(ctx context.Context, c *runnel.Client, name string) string {
	ctx, cancel := context.WithTimeout(ctx, completionTimeout)
	defer cancel()
	wfs, err := c.Admin().ListWorkflows(ctx)
	if err != nil {
		return "`runnel workflows list` shows the registered workflows"
	}
	if len(wfs) == 0 {
		return "workflows are registered by the workers that run them, and none has connected to this engine yet: " +
			"`runnel worker` runs one with the demo workflows, `runnel dev` runs an engine with them built in, " +
			"and your own workers register theirs with Worker.Register"
	}
	names := make([]string, 0, len(wfs))
	for _, wf := range wfs {
		names = append(names, wf.Name)
	}
	if best := closestName(name, names); best != "" {
		return fmt.Sprintf("did you mean %q? `runnel workflows list` shows each registered workflow with its steps", best)
	}
	return "`runnel workflows list` shows each registered workflow with its steps"
}

// closestName returns the candidate a mistyped name most likely meant: the
// one that contains it, or is within a few edits of it; "" if none is
// close, or several are equally close.
func closestName(name string, candidates []string) string {
	best, bestDist, ties := "", len(name)/3+2, 0 // a third of the name, and at least 2 edits, are typos; more is another name
	for _, c := range candidates {
		d := editDistance(strings.ToLower(name), strings.ToLower(c))
		if name != "" && strings.Contains(strings.ToLower(c), strings.ToLower(name)) {
			d = min(d, 1)
		}
		switch {
		case d < bestDist:
			best, bestDist, ties = c, d, 0
		case d == bestDist && best != "":
			ties++
		}
	}
	if ties > 0 {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
