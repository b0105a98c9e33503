// Package stats computes the summary figures of the lock benchmark:
// percentiles of latency samples, medians over rounds, and Jain's fairness
// index over per-worker counts. Its functions are pure and safe for
// concurrent use; none of them modifies its input.
package stats

import (
	"math"
	"slices"
	"time"
)

// Percentile returns the p-th percentile (0 <= p <= 100) of samples by the
// nearest-rank method: the smallest sample that at least p percent of the
// samples do not exceed. It returns 0 for no samples.
func Percentile(samples []time.Duration, p float64) time.Duration {
	if len(samples) == 0 {
		return 0
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	return s[rank(len(s), p)]
}

// rank is the 0-based nearest-rank index of the p-th percentile of n sorted
// samples.
func rank(n int, p float64) int {
	r := int(math.Ceil(p / 100 * float64(n)))
	return min(max(r, 1), n) - 1
}

// Median returns the median of values (the mean of the two middle values
// for an even count), or NaN for no values. NaN values are ignored.
func Median(values []float64) float64 {
	s := make([]float64, 0, len(values))
	for _, v := range values {
		if !math.IsNaN(v) {
			s = append(s, v)
		}
	}
	if len(s) == 0 {
		return math.NaN()
	}
	slices.Sort(s)
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}

// Jain returns Jain's fairness index of counts, (Σx)² / (n·Σx²): 1 when all
// counts are equal, 1/n when one worker got everything. It returns NaN when
// there are no counts or all are zero.
func Jain(counts []int64) float64 {
	var sum, sq float64
	for _, c := range counts {
		x := float64(c)
		sum += x
		sq += x * x
	}
	if sq == 0 {
		return math.NaN()
	}
	return sum * sum / (float64(len(counts)) * sq)
}

// MinMax returns the smallest and the largest of counts, or 0, 0 for none.
func MinMax(counts []int64) (lo, hi int64) {
	if len(counts) == 0 {
		return 0, 0
	}
	return slices.Min(counts), slices.Max(counts)
}
