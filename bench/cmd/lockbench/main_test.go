package main

import (
	"bytes"
	"context"
	"io"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/disgolock/disgo/bench/internal/redisinfo"
)

// TestMain lets the test binary serve as the capacity scenario's worker
// processes, which the scenario starts by re-executing its own binary.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == workerArg {
		os.Exit(workerMain(os.Args[2:], os.Stdin, os.Stdout))
	}
	os.Exit(m.Run())
}

func TestParseSteps(t *testing.T) {
	steps, err := parseSteps("1, 4,16")
	require.NoError(t, err)
	assert.Equal(t, []int{1, 4, 16}, steps)
	for _, bad := range []string{"", "0", "4,4", "8,2", "x", "1,,2"} {
		_, err := parseSteps(bad)
		assert.Error(t, err, "%q", bad)
	}
}

func TestRampStopsWhenTheRateStopsRising(t *testing.T) {
	measure := func(rates ...float64) func(int) (float64, error) {
		return func(i int) (float64, error) { return rates[i], nil }
	}
	rates, best, flat, err := ramp(5, 0.05, measure(100, 200, 204, 300, 400))
	require.NoError(t, err)
	assert.Equal(t, []float64{100, 200, 204}, rates, "204 is under 5 %% above 200: stop")
	assert.Equal(t, 2, best, "the best step is the highest rate, even when it gained too little")
	assert.True(t, flat)

	rates, best, flat, err = ramp(4, 0.05, measure(100, 200, 150, 400))
	require.NoError(t, err)
	assert.Equal(t, []float64{100, 200, 150}, rates)
	assert.Equal(t, 1, best)
	assert.True(t, flat)

	rates, best, flat, err = ramp(3, 0.05, measure(100, 200, 300))
	require.NoError(t, err)
	assert.Len(t, rates, 3)
	assert.Equal(t, 2, best)
	assert.False(t, flat, "still rising at the last step: not saturated")

	_, _, _, err = ramp(3, 0.05, func(i int) (float64, error) {
		if i == 1 {
			return 0, assert.AnError
		}
		return 1, nil
	})
	assert.ErrorIs(t, err, assert.AnError)
}

func TestCapacityMetrics(t *testing.T) {
	res := []workerResult{
		{Pairs: 1000, Elapsed: int64(time.Second), CPU: int64(30 * time.Millisecond)},
		{Pairs: 3000, Elapsed: int64(2 * time.Second), CPU: int64(50 * time.Millisecond)},
	}
	d := redisinfo.Delta{
		Calls: map[string]int64{"evalsha": 8000, "get": 8000},
		Usec:  map[string]int64{"evalsha": 40000, "get": 4000},
		CPU:   0.1,
	}
	m := capacityMetrics(res, d, 2*time.Second, map[string]float64{"get": 1})
	assert.InDelta(t, 2500.0, m["ops/s"], 1e-9, "1000/s + 1500/s")
	assert.InDelta(t, 5.0, m["redis%"], 1e-9, "0.1 s of CPU in 2 s")
	assert.InDelta(t, float64(10*time.Microsecond), m["usec/pair"], 1e-6, "the get inside the script is not counted twice")
	assert.InDelta(t, float64(25*time.Microsecond), m["cpu/pair"], 1e-6)
	assert.InDelta(t, float64(20*time.Microsecond), m["client/pair"], 1e-6)
	assert.InDelta(t, 4.0, m["cmds/pair"], 1e-9)
	assert.InDelta(t, 2.0, m["top/pair"], 1e-9)

	m = capacityMetrics(nil, redisinfo.Delta{}, time.Second, nil)
	assert.Equal(t, metrics{"ops/s": 0, "redis%": 0}, m, "no pairs: no per-pair figures")
}

func TestParseRPS(t *testing.T) {
	out := `"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
"SET","78125.00","0.013","0.008","0.015","0.015","0.031","0.151"
`
	rps, err := parseRPS(out)
	require.NoError(t, err)
	assert.Equal(t, 78125.0, rps)

	_, err = parseRPS("ERROR: NOSCRIPT\n")
	assert.Error(t, err)
}

func TestParseFlags(t *testing.T) {
	c, err := parseFlags(nil, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, 3, c.rounds)
	assert.Equal(t, "", c.addr, "no address: start an own server, never 6379")
	assert.Equal(t, scenarioNames, c.scenarios)
	assert.True(t, c.only.MatchString("redsync"))

	c, err = parseFlags([]string{"-scenarios", "contended, handoff", "-only", "^disgo-"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, []string{"contended", "handoff"}, c.scenarios)
	assert.False(t, c.only.MatchString("redsync"))

	for _, bad := range [][]string{
		{"-scenarios", "nosuch"}, {"-only", "("}, {"-rounds", "0"}, {"-duration", "0s"},
		{"-contenders", "1"}, {"extra"}, {"-renew-lease", "1ms"},
	} {
		_, err := parseFlags(bad, io.Discard)
		assert.Error(t, err, "%q", bad)
	}
}

func TestResultsAggregatesAndRenders(t *testing.T) {
	r := newResults()
	r.add("redislock", metrics{"ops/s": 100, "overlaps": 0})
	r.add("redislock", metrics{"ops/s": 300, "overlaps": 1})
	r.add("redislock", metrics{"ops/s": 200, "overlaps": 2})
	r.add("rueidislock", metrics{"ops/s": 50})
	r.add("disgo-x", metrics{"ops/s": 400})
	r.setText("broken", "error", "boom")

	assert.Equal(t, 200.0, r.median("redislock", "ops/s"))
	assert.Equal(t, 3.0, r.total("redislock", "overlaps"))
	assert.Equal(t, 2.0, r.highest("redislock", "overlaps"))
	assert.Equal(t, 200.0, r.best("ops/s", true), "best peer by median")
	assert.Equal(t, 50.0, r.best("ops/s", false))
	assert.True(t, math.IsNaN(r.median("broken", "ops/s")))

	var out bytes.Buffer
	table{title: "T", notes: []string{"a note"}, cols: []column{
		num("ops", "ops/s", rate), agg("overlaps", "overlaps", (*results).total, count), ratio("× best peer", "ops/s", true),
	}}.render(&out, r)
	s := out.String()
	assert.Contains(t, s, "| implementation | ops | overlaps | × best peer |")
	assert.Contains(t, s, "| redislock | 200 | 3 | 1.00× |")
	assert.Contains(t, s, "| disgo-x | 400 | – | 2.00× |")
	assert.Contains(t, s, "| broken | – | – | – |")
	assert.Contains(t, s, "- a note")
	assert.Contains(t, s, "- **broken failed:** boom")
}

func TestBreakdown(t *testing.T) {
	assert.Equal(t, "evalsha 2.00, del 1.00, get 1.00",
		breakdown(map[string]int64{"get": 100, "evalsha": 200, "del": 100, "ping": 0}, 100))
	assert.Equal(t, "–", breakdown(map[string]int64{"get": 1}, 0))
	assert.Equal(t, "none", breakdown(map[string]int64{"ping": 1}, 1000))
}

func TestFmtDur(t *testing.T) {
	assert.Equal(t, "367 µs", fmtDur(367*time.Microsecond))
	assert.Equal(t, "18.25 ms", fmtDur(18250*time.Microsecond))
	assert.Equal(t, "1.50 s", fmtDur(1500*time.Millisecond))
}

// TestRunSmoke runs every scenario briefly on an own redis-server and checks
// that the report is complete and that no implementation failed or let two
// holders in at once.
func TestRunSmoke(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	cfg, err := parseFlags([]string{
		"-rounds", "1", "-duration", "150ms", "-handoffs", "5", "-held", "40", "-hold", "300ms",
		"-renew-lease", "300ms", "-contenders", "3", "-parallel", "4", "-capacity-procs", "2", "-capacity-steps", "1,2",
		"-readers", "3", "-kind-pairs", "20",
		"-only", "disgo-(goredis|rueidis)-fair|redislock|rueidislock|baseline|floor-|redis-benchmark 2×SET",
	}, io.Discard)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out bytes.Buffer
	require.NoError(t, run(ctx, cfg, "lockbench test", &out, io.Discard))
	s := out.String()
	for _, want := range []string{
		"### Uncontended", "### Parallel", "### Capacity", "### Contended", "### Hand-off", "### Held locks", "### Lost wake-ups",
		"### Redis requests per acquisition", "### Read hand-off", "### Redis requests and commands per uncontended acquire+release pair, by kind",
		"| disgo-goredis-fair · semaphore 1 permit |", "| disgo-rueidis-fair · write |", "| disgo-goredis-fair |", "| disgo-rueidis-fair |", "| rueidislock |", "| baseline-2rtt |", "Redis 7",
	} {
		assert.Contains(t, s, want)
	}
	assert.NotContains(t, s, "failed:**", "an implementation failed:\n%s", s)
	assert.NotContains(t, s, "| redsync |", "-only must filter")
	_, requests, _ := strings.Cut(s, "### Redis requests")
	assert.Contains(t, requests, "| baseline-2rtt | 2.00 | 2.00 |", "the baseline costs exactly two requests per pair")
	assert.Contains(t, requests, "| floor-emptyscripts | 2.00 | 2.00 |", "two empty scripts per pair")
	assert.Contains(t, requests, "| floor-2script | 2.00 | 9.00 |", "two scripts running GET, ZRANGE, TIME, SET, SET and GET, DEL")
	assert.Contains(t, requests, "| floor-2script-rueidis | 2.00 | 9.00 |", "the same two scripts on rueidis")
	assert.Contains(t, requests, "| floor-2script-autopipe | 2.00 | 9.00 |", "the same two scripts through the AutoPipeliner")
	assert.NotContains(t, s, "| floor-2script | – |", "no floor row stays empty")
	assert.NotContains(t, requests, "| floor-publish |", "the hand-off floor runs in no counted scenario")
	assert.NotContains(t, requests, "| floor-handoffscript |", "nor does the script hand-off floor")
	_, handoff, _ := strings.Cut(s, "### Hand-off")
	handoff, _, _ = strings.Cut(handoff, "\n### ")
	assert.Regexp(t, `\| floor-publish \| [1-9]\d* \| [0-9.]+ [µm]s \| [0-9.]+ [µm]s \| [0-9.]+ [µm]s \| [0-9.]+× \| 1\.00× \| 0 \| 0 \|`, handoff, "the hand-off floor ran")
	assert.Regexp(t, `\| floor-handoffscript \| [1-9]\d* \| [0-9.]+ [µm]s \| [0-9.]+ [µm]s \| [0-9.]+ [µm]s \| [0-9.]+× \| [0-9.]+× \| 0 \| 0 \|`, handoff, "the script hand-off floor ran")
	assert.Regexp(t, `\| disgo-rueidis-fair \| [1-9]\d* \| [0-9.]+ [µm]s \| [0-9.]+ [µm]s \| [0-9.]+ [µm]s \| [0-9.]+× \| [0-9.]+× \| 0 \| 0 \|`, handoff)
	_, unc, _ := strings.Cut(s, "### Uncontended")
	unc, _, _ = strings.Cut(unc, "\n### ")
	assert.NotContains(t, unc, "| floor-publish |", "the hand-off floor takes part in the hand-off scenario only")
	assert.NotContains(t, unc, "| floor-handoffscript |", "so does the script hand-off floor")
	_, capacity, _ := strings.Cut(s, "### Capacity")
	capacity, _, _ = strings.Cut(capacity, "### Contended")
	assert.Regexp(t, `\| baseline-2rtt \| [24] \| [1-9]\d* \|`, capacity, "the baseline ran in worker processes")
	assert.Regexp(t, `\| redislock \| [24] \| [1-9]\d* \| 1\.00× \| [0-9] \| \d+ % \| [0-9.]+ µs \| 1\.00× \|`, capacity)
	assert.Regexp(t, `\| floor-2script \| [24] \| [1-9]\d* \| [0-9.]+× \| [0-9] \| \d+ % \| [0-9.]+ µs \| [0-9.]+× \| 1\.00× \|`, capacity, "the floors ran in worker processes")
	assert.Regexp(t, `\| floor-emptyscripts \| [24] \| [1-9]\d* \|`, capacity)
	_, rwh, _ := strings.Cut(s, "### Read hand-off")
	rwh, _, _ = strings.Cut(rwh, "\n### ")
	assert.Regexp(t, `\| disgo-rueidis-fair \| [1-9]\d* \| [0-9.]+ [µm]s \|`, rwh, "read hand-offs were measured")
	assert.NotContains(t, rwh, "| redislock |", "the peers have no read-write locks")
	_, uncontended, _ := strings.Cut(s, "### Uncontended")
	assert.Regexp(t, `\| redis-benchmark 2×SET \| \d+ \| – \| – \| 100 %`, uncontended)
	assert.Regexp(t, `\| redislock \| \d+ \| [0-9.]+ [µm]s \| [0-9.]+ [µm]s \| \d+ % \| [0-9.]+ µs \| 1\.00× \|`, uncontended, "Redis time per pair")
}
