package main

import (
	"bytes"
	"context"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

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
		"-renew-lease", "300ms", "-contenders", "3", "-parallel", "4",
		"-only", "disgo-(goredis|rueidis)-fair|redislock|rueidislock|baseline|redis-benchmark 2×SET",
	}, io.Discard)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out bytes.Buffer
	require.NoError(t, run(ctx, cfg, "lockbench test", &out, io.Discard))
	s := out.String()
	for _, want := range []string{
		"### Uncontended", "### Parallel", "### Contended", "### Hand-off", "### Held locks", "### Lost wake-ups",
		"### Redis requests per acquisition", "| disgo-goredis-fair |", "| disgo-rueidis-fair |", "| rueidislock |", "| baseline-2rtt |", "Redis 7",
	} {
		assert.Contains(t, s, want)
	}
	assert.NotContains(t, s, "failed:**", "an implementation failed:\n%s", s)
	assert.NotContains(t, s, "| redsync |", "-only must filter")
	_, requests, _ := strings.Cut(s, "### Redis requests")
	assert.Contains(t, requests, "| baseline-2rtt | 2.00 | 2.00 |", "the baseline costs exactly two requests per pair")
	_, uncontended, _ := strings.Cut(s, "### Uncontended")
	assert.Regexp(t, `\| redis-benchmark 2×SET \| \d+ \| – \| – \| 100 %`, uncontended)
}
