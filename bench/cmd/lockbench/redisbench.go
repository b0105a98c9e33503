package main

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// minScript is the EVALSHA redis-benchmark runs: one write, like the
// smallest lock script.
const minScript = "return redis.call('set', KEYS[1], ARGV[1])"

// redisBenchmark runs redis-benchmark against addr with args (after the
// connection and --csv flags) and returns its requests per second.
func redisBenchmark(ctx context.Context, addr string, args ...string) (float64, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "redis-benchmark", append([]string{"-h", host, "-p", port, "--csv"}, args...)...)
	out, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("redis-benchmark %s: %w", strings.Join(args, " "), err)
	}
	return parseRPS(string(out))
}

// parseRPS reads the "rps" column of the last row of redis-benchmark's CSV
// output.
func parseRPS(out string) (float64, error) {
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		return 0, fmt.Errorf("redis-benchmark output: %w", err)
	}
	if len(rows) < 2 || len(rows[0]) < 2 || rows[0][1] != "rps" {
		return 0, errors.New("redis-benchmark output: no rps row")
	}
	last := rows[len(rows)-1]
	if len(last) < 2 {
		return 0, errors.New("redis-benchmark output: short row")
	}
	return strconv.ParseFloat(last[1], 64)
}

// requests is how many requests redis-benchmark should send to take about
// d at rate requests per second.
func requests(d time.Duration, rate float64) string {
	return strconv.Itoa(max(1000, int(d.Seconds()*rate)))
}
