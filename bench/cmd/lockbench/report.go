package main

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/disgolock/disgo/bench/internal/stats"
)

// peerNames are the implementations "best peer" ratios compare against.
var peerNames = []string{"redsync", "redislock", "rueidislock"}

// results collects, for one scenario, the per-round values of each metric
// of each implementation, and text cells. It is used by one goroutine.
type results struct {
	order []string // row names in first-seen order
	vals  map[string]map[string][]float64
	text  map[string]map[string]string
}

func newResults() *results {
	return &results{vals: make(map[string]map[string][]float64), text: make(map[string]map[string]string)}
}

func (r *results) row(name string) {
	if _, ok := r.vals[name]; !ok {
		r.order = append(r.order, name)
		r.vals[name] = make(map[string][]float64)
		r.text[name] = make(map[string]string)
	}
}

// add records one round's metrics of row name.
func (r *results) add(name string, m map[string]float64) {
	r.row(name)
	for k, v := range m {
		r.vals[name][k] = append(r.vals[name][k], v)
	}
}

// set sets all round values of metric of row name.
func (r *results) set(name, metric string, vals []float64) {
	r.row(name)
	r.vals[name][metric] = vals
}

// setText sets a text cell of row name.
func (r *results) setText(name, key, text string) {
	r.row(name)
	r.text[name][key] = text
}

// median is the median over rounds of metric of row name; NaN if unknown.
func (r *results) median(name, metric string) float64 {
	return stats.Median(r.vals[name][metric])
}

// total is the sum over rounds of metric of row name; NaN if unknown.
func (r *results) total(name, metric string) float64 {
	v := r.vals[name][metric]
	if len(v) == 0 {
		return math.NaN()
	}
	var sum float64
	for _, x := range v {
		sum += x
	}
	return sum
}

// highest is the maximum over rounds of metric of row name; NaN if unknown.
func (r *results) highest(name, metric string) float64 {
	v := r.vals[name][metric]
	if len(v) == 0 {
		return math.NaN()
	}
	return slices.Max(v)
}

// best is the highest (or lowest) median of metric among the peers.
func (r *results) best(metric string, higher bool) float64 {
	best := math.NaN()
	for _, p := range peerNames {
		v := r.median(p, metric)
		if math.IsNaN(v) || v == 0 {
			continue
		}
		if math.IsNaN(best) || (higher && v > best) || (!higher && v < best) {
			best = v
		}
	}
	return best
}

// column is one column of a table: its heading and how to fill a cell.
type column struct {
	head string
	cell func(r *results, name string) string
}

// num shows the median of metric over rounds, formatted by f.
func num(head, metric string, f func(float64) string) column {
	return agg(head, metric, (*results).median, f)
}

// agg shows metric aggregated over rounds by a, formatted by f.
func agg(head, metric string, a func(r *results, name, metric string) float64, f func(float64) string) column {
	return column{head, func(r *results, name string) string {
		v := a(r, name, metric)
		if math.IsNaN(v) {
			return "–"
		}
		return f(v)
	}}
}

// ratio shows the median of metric divided by the best peer's.
func ratio(head, metric string, higher bool) column {
	return column{head, func(r *results, name string) string {
		v, b := r.median(name, metric), r.best(metric, higher)
		if math.IsNaN(v) || math.IsNaN(b) {
			return "–"
		}
		return fmt.Sprintf("%.2f×", v/b)
	}}
}

// vsRow shows the median of metric divided by row ref's.
func vsRow(head, metric, ref string) column {
	return column{head, func(r *results, name string) string {
		v, b := r.median(name, metric), r.median(ref, metric)
		if math.IsNaN(v) || math.IsNaN(b) || b == 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f×", v/b)
	}}
}

// txt shows a text cell.
func txt(head, key string) column {
	return column{head, func(r *results, name string) string {
		if s := r.text[name][key]; s != "" {
			return s
		}
		return "–"
	}}
}

func count(v float64) string { return fmt.Sprintf("%.0f", v) }
func rate(v float64) string  { return fmt.Sprintf("%.0f", v) }
func frac(v float64) string  { return fmt.Sprintf("%.2f", v) }
func pct(v float64) string   { return fmt.Sprintf("%.0f %%", v) }
func dur(v float64) string   { return fmtDur(time.Duration(v)) }

// usPair shows a duration per pair in µs with one decimal.
func usPair(v float64) string { return fmt.Sprintf("%.1f µs", v/float64(time.Microsecond)) }

// fmtDur prints a duration with three significant digits in µs, ms or s.
func fmtDur(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	case d < time.Second:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

// table is one markdown table of the report.
type table struct {
	title string
	notes []string
	cols  []column
}

// render writes t with one row per row of r, followed by its notes and any
// errors ("error" text cells).
func (t table) render(w io.Writer, r *results) {
	fmt.Fprintf(w, "\n### %s\n\n", t.title)
	heads := []string{"implementation"}
	for _, c := range t.cols {
		heads = append(heads, c.head)
	}
	fmt.Fprintf(w, "| %s |\n|%s\n", strings.Join(heads, " | "), strings.Repeat(" --- |", len(heads)))
	for _, name := range r.order {
		cells := []string{name}
		for _, c := range t.cols {
			cells = append(cells, c.cell(r, name))
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
	}
	if len(t.notes) > 0 {
		fmt.Fprintln(w)
	}
	for _, n := range t.notes {
		fmt.Fprintf(w, "- %s\n", n)
	}
	for _, name := range r.order {
		if e := r.text[name]["error"]; e != "" {
			fmt.Fprintf(w, "- **%s failed:** %s\n", name, e)
		}
	}
}

// breakdown formats per-acquisition command counts, most frequent first,
// leaving out what rounds to 0.00.
func breakdown(calls map[string]int64, acq int64) string {
	if acq == 0 {
		return "–"
	}
	cmds := slices.SortedFunc(maps.Keys(calls), func(a, b string) int {
		return cmp.Or(cmp.Compare(calls[b], calls[a]), strings.Compare(a, b))
	})
	var parts []string
	for _, c := range cmds {
		if per := float64(calls[c]) / float64(acq); per >= 0.005 {
			parts = append(parts, fmt.Sprintf("%s %.2f", c, per))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
