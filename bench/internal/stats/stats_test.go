package stats

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestPercentileNearestRank(t *testing.T) {
	var s []time.Duration
	for i := 100; i >= 1; i-- { // unsorted on purpose
		s = append(s, time.Duration(i)*time.Millisecond)
	}
	assert.Equal(t, 50*time.Millisecond, Percentile(s, 50))
	assert.Equal(t, 99*time.Millisecond, Percentile(s, 99))
	assert.Equal(t, 100*time.Millisecond, Percentile(s, 100))
	assert.Equal(t, 1*time.Millisecond, Percentile(s, 0))
	assert.Equal(t, 100*time.Millisecond, s[0], "input must stay unsorted")
}

func TestPercentileSmallAndEmpty(t *testing.T) {
	assert.Equal(t, time.Duration(0), Percentile(nil, 50))
	one := []time.Duration{7}
	assert.Equal(t, time.Duration(7), Percentile(one, 1))
	assert.Equal(t, time.Duration(7), Percentile(one, 99))
	three := []time.Duration{3, 1, 2}
	assert.Equal(t, time.Duration(2), Percentile(three, 50))
	assert.Equal(t, time.Duration(3), Percentile(three, 99))
}

func TestMedian(t *testing.T) {
	assert.Equal(t, 2.0, Median([]float64{3, 1, 2}))
	assert.Equal(t, 2.5, Median([]float64{4, 1, 3, 2}))
	assert.Equal(t, 5.0, Median([]float64{math.NaN(), 5}))
	assert.True(t, math.IsNaN(Median(nil)))
}

func TestJain(t *testing.T) {
	assert.InDelta(t, 1.0, Jain([]int64{5, 5, 5, 5}), 1e-12)
	assert.InDelta(t, 0.25, Jain([]int64{8, 0, 0, 0}), 1e-12)
	// (1+2+3)² / (3·(1+4+9)) = 36/42
	assert.InDelta(t, 36.0/42.0, Jain([]int64{1, 2, 3}), 1e-12)
	assert.True(t, math.IsNaN(Jain([]int64{0, 0})))
	assert.True(t, math.IsNaN(Jain(nil)))
}

func TestMinMax(t *testing.T) {
	lo, hi := MinMax([]int64{4, 9, 2, 7})
	assert.Equal(t, int64(2), lo)
	assert.Equal(t, int64(9), hi)
	lo, hi = MinMax(nil)
	assert.Zero(t, lo)
	assert.Zero(t, hi)
}
