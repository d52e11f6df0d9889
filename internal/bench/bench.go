// Package bench runs Runnel's benchmark scenarios (`runnel bench`). Each
// scenario starts its own engine and bench worker processes on loopback (or
// uses a running engine given by --host), warms up, measures for a
// duration, and reports figures beside the targets of the benchmark issue.
// The bench process itself is the client: it triggers runs and follows
// streams through the Go SDK and over SSE, as users would.
package bench

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/runnel-dev/runnel/internal/redact"
)

// Options configure a bench run.
type Options struct {
	Scenario string
	// DB is "sqlite" (each engine on a fresh SQLite file) or a PostgreSQL
	// URL (a fresh schema in that database, dropped afterwards).
	DB string
	// Duration is how long each case measures, after its warm-up.
	Duration time.Duration
	// Host targets running engines (comma-separated URLs) instead of
	// starting them; Token authenticates there.
	Host, Token string
	// Scale multiplies the fanout scenario's subscriber counts and the
	// replay scenario's event count: below 1 for quick checks.
	Scale float64
	// Repeat runs the scenario this many times and reports medians.
	Repeat int
	// ProfileDir, when set, receives a CPU profile of each engine process
	// (engine0.pprof, …), written when the scenario stops it.
	ProfileDir string
	// Binary is the runnel executable started for engines and workers.
	Binary string
	// Progress receives a line per step as the bench goes.
	Progress io.Writer
}

func (o Options) postgres() bool {
	return strings.HasPrefix(o.DB, "postgres://") || strings.HasPrefix(o.DB, "postgresql://")
}

func (o Options) store() string {
	if o.Host != "" {
		return "remote"
	}
	if o.postgres() {
		return "postgres"
	}
	return "sqlite"
}

func (o Options) progress(format string, args ...any) {
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, format+"\n", args...)
	}
}

// Measurement is one figure of a case.
type Measurement struct {
	Case   string  `json:"case"`
	Metric string  `json:"metric"`
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
	// Target is the target for this store ("≥ 100000"), if any,
	// and Met whether Value meets it.
	Target string `json:"target,omitempty"`
	Met    *bool  `json:"met,omitempty"`
	// Limit is the raw capacity of the resource this figure uses, measured
	// in the same run (see limits.go), and Ratio is Value ÷ Limit.Value:
	// the share of the limit reached for a rate, how many times the floor
	// for a latency.
	Limit *Limit  `json:"limit,omitempty"`
	Ratio float64 `json:"ratio,omitempty"`

	goal *goal // kept through medians; judged once at the end
}

// Report is the result of a bench run.
type Report struct {
	Scenario     string        `json:"scenario"`
	Store        string        `json:"store"`
	Duration     string        `json:"duration"`
	Repeats      int           `json:"repeats"`
	CPUs         int           `json:"cpus"`
	GoVersion    string        `json:"goVersion"`
	Measurements []Measurement `json:"measurements"`
}

// scenario measures once and returns its figures.
type scenario func(ctx context.Context, o Options) ([]Measurement, error)

var scenarios = map[string]scenario{
	"ingest":     ingest,
	"latency":    latency,
	"runs":       runs,
	"fanout":     fanout,
	"replay":     replay,
	"cross-node": crossNode,
	"soak":       soak,
	// The Durable Streams protocol on a standalone stream.
	"durable-append":  dsAppend,
	"durable-latency": dsLatency,
}

// Scenarios lists the scenario names.
func Scenarios() []string { return slices.Sorted(maps.Keys(scenarios)) }

// Run runs the scenario opts.Repeat times and reports the median of each
// figure.
func Run(ctx context.Context, o Options) (*Report, error) {
	run, ok := scenarios[o.Scenario]
	if !ok {
		return nil, fmt.Errorf("unknown bench scenario %q: want one of %s", o.Scenario, strings.Join(Scenarios(), ", "))
	}
	if o.Duration <= 0 {
		return nil, fmt.Errorf("invalid --duration %v: want a positive duration", o.Duration)
	}
	if o.Scale <= 0 || o.Scale > 10 {
		return nil, fmt.Errorf("invalid --scale %v: want a factor above 0 and at most 10", o.Scale)
	}
	o.Repeat = max(o.Repeat, 1)
	if o.DB == "" {
		o.DB = "sqlite"
	}
	if o.DB != "sqlite" && !o.postgres() {
		return nil, fmt.Errorf("invalid --db %q: want sqlite or a postgres:// URL", redact.Secrets(o.DB))
	}
	var all [][]Measurement
	for i := range o.Repeat {
		if o.Repeat > 1 {
			o.progress("== %s: run %d of %d", o.Scenario, i+1, o.Repeat)
		}
		ms, err := run(ctx, o)
		if err != nil {
			return nil, fmt.Errorf("bench %s: %w", o.Scenario, err)
		}
		all = append(all, ms)
	}
	r := &Report{
		Scenario: o.Scenario, Store: o.store(), Duration: o.Duration.String(), Repeats: o.Repeat,
		CPUs: runtime.NumCPU(), GoVersion: runtime.Version(),
		Measurements: medians(all),
	}
	for i := range r.Measurements {
		judge(&r.Measurements[i], r.Store)
	}
	return r, nil
}

// medians reduces repeated runs to the median of each (case, metric),
// keeping the first run's order.
func medians(runs [][]Measurement) []Measurement {
	type key struct{ c, m string }
	values := map[key][]float64{}
	limits := map[key][]float64{}
	for _, ms := range runs {
		for _, m := range ms {
			k := key{m.Case, m.Metric}
			values[k] = append(values[k], m.Value)
			if m.Limit != nil {
				limits[k] = append(limits[k], m.Limit.Value)
			}
		}
	}
	var out []Measurement
	for _, m := range runs[0] {
		k := key{m.Case, m.Metric}
		m.Value = median(values[k])
		if m.Limit != nil {
			l := *m.Limit
			l.Value = median(limits[k])
			m.Limit = &l
			if l.Value > 0 && !math.IsNaN(m.Value) {
				m.Ratio = m.Value / l.Value
			}
		}
		out = append(out, m)
	}
	return out
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// WriteTable prints the report as a table.
func (r *Report) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "runnel bench %s — store %s, %s per case, median of %d run(s), %d CPUs, %s\n\n",
		r.Scenario, r.Store, r.Duration, r.Repeats, r.CPUs, r.GoVersion)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CASE\tMETRIC\tVALUE\tTARGET\tLIMIT\tRATIO\tLIMIT MEASURED AS\t")
	for _, m := range r.Measurements {
		verdict := ""
		if m.Met != nil {
			verdict = map[bool]string{true: " ok", false: " MISSED"}[*m.Met]
		}
		limit, ratio, what := "", "", ""
		if m.Limit != nil {
			limit = formatValue(m.Limit.Value) + " " + m.Limit.Unit
			ratio = m.RatioText()
			what = m.Limit.What
		}
		fmt.Fprintf(tw, "%s\t%s\t%s %s\t%s%s\t%s\t%s\t%s\t\n", m.Case, m.Metric, formatValue(m.Value), m.Unit, m.Target, verdict, limit, ratio, what)
	}
	return tw.Flush()
}

// RatioText is the ratio as printed: a percentage of the limit for a rate
// (higher is better), a multiple of the floor for a time.
func (m Measurement) RatioText() string {
	if m.Limit == nil || m.Ratio == 0 {
		return ""
	}
	if m.Unit == "ms" {
		return fmt.Sprintf("%.1f×", m.Ratio)
	}
	return fmt.Sprintf("%.0f%%", 100*m.Ratio)
}

// WriteJSON prints the report as one JSON document.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func formatValue(v float64) string {
	switch {
	case math.IsNaN(v):
		return "-"
	case v >= 1000:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// percentile returns the p-th percentile (0 < p ≤ 100) of sorted durations
// in milliseconds, NaN when there are none.
func percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	i = min(max(i, 0), len(sorted)-1)
	return float64(sorted[i]) / float64(time.Millisecond)
}

func sortDurations(d []time.Duration) []time.Duration {
	slices.SortFunc(d, func(a, b time.Duration) int { return cmp.Compare(a, b) })
	return d
}
