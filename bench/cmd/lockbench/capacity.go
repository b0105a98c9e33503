package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/disgolock/disgo/bench/internal/redisinfo"
)

// workerArg, as the first argument, makes lockbench a capacity worker: one
// client process of the capacity scenario (see [workerMain]).
const workerArg = "capacity-worker"

// Bounds of the capacity scenario's process handling.
const (
	workerReadyTimeout = 2 * time.Minute // start, open and warm up
	workerExtraTime    = time.Minute     // beyond -duration, to report and exit
	monitorTimeout     = 30 * time.Second
	calibrationPairs   = 50
)

// workerResult is what a worker prints, as one JSON line, once it is done.
type workerResult struct {
	Pairs   int64  `json:"pairs"`
	Elapsed int64  `json:"elapsed_ns"`
	CPU     int64  `json:"cpu_ns"` // user + system, this process, over the measurement
	Err     string `json:"err,omitempty"`
}

// workerMain runs one capacity worker: it opens one instance of -impl (one
// client and locker, as one application process would), warms up one key
// per goroutine, prints "ready", waits for a line on in, then runs
// lock+unlock pairs on -goroutines distinct keys for -duration and prints a
// workerResult. It returns the exit code.
func workerMain(args []string, in io.Reader, out io.Writer) int {
	fs := flag.NewFlagSet(workerArg, flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	name := fs.String("impl", "", "implementation name")
	addr := fs.String("addr", "", "Redis address")
	key := fs.String("key", "lockbench:capacity", "key prefix")
	goroutines := fs.Int("goroutines", 1, "goroutines, each on its own key")
	duration := fs.Duration("duration", time.Second, "measurement")
	backoff := fs.Duration("bsm-backoff", time.Millisecond, "bsm/redislock retry interval")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	res := runWorker(*name, *addr, *key, *goroutines, *duration, *backoff, in, out)
	if err := json.NewEncoder(out).Encode(res); err != nil || res.Err != "" {
		return 1
	}
	return 0
}

func runWorker(name, addr, key string, goroutines int, d, backoff time.Duration, in io.Reader, out io.Writer) workerResult {
	fail := func(err error) workerResult { return workerResult{Err: err.Error()} }
	i := slices.IndexFunc(append(slices.Clone(registry), peers(backoff)...), func(i Impl) bool { return i.Name == name })
	if i < 0 || goroutines < 1 || d <= 0 {
		return fail(fmt.Errorf("unknown implementation %q, or bad -goroutines/-duration", name))
	}
	impl := append(slices.Clone(registry), peers(backoff)...)[i]
	inst, err := impl.Open(addr, openOpts{})
	if err != nil {
		return fail(err)
	}
	defer inst.Close()
	ctx, cancel := context.WithTimeout(context.Background(), workerReadyTimeout+d+workerExtraTime)
	defer cancel()
	keys := make([]string, goroutines)
	var ferr firstErr
	var wg sync.WaitGroup
	for g := range keys {
		keys[g] = fmt.Sprintf("%s:%d", key, g)
		wg.Go(func() {
			if err := warm(ctx, inst, keys[g]); err != nil {
				ferr.set(err)
			}
		})
	}
	wg.Wait()
	if err := ferr.get(); err != nil {
		return fail(err)
	}
	if _, err := fmt.Fprintln(out, "ready"); err != nil {
		return fail(err)
	}
	if _, err := bufio.NewReader(in).ReadString('\n'); err != nil {
		return fail(fmt.Errorf("waiting for the start: %w", err))
	}
	var pairs atomic.Int64
	cpu0 := processCPU()
	start := time.Now()
	for _, k := range keys {
		wg.Go(func() {
			for n := 0; n < maxOpsPerWorker && time.Since(start) < d && ferr.get() == nil; n++ {
				if err := pair(ctx, inst, k); err != nil {
					ferr.set(err)
					return
				}
				pairs.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed, cpu := time.Since(start), processCPU()-cpu0
	if err := ferr.get(); err != nil {
		return fail(err)
	}
	return workerResult{Pairs: pairs.Load(), Elapsed: int64(elapsed), CPU: int64(cpu)}
}

// worker is one running worker process, seen from the bench.
type worker struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	stderr bytes.Buffer
}

func (w *worker) fail(err error) error {
	if s := strings.TrimSpace(w.stderr.String()); s != "" {
		return fmt.Errorf("%w; stderr: %s", err, tail(s, 500))
	}
	return err
}

// readLine reads one line of the worker's output, or fails after timeout.
func (w *worker) readLine(timeout time.Duration) (string, error) {
	type line struct {
		s   string
		err error
	}
	ch := make(chan line, 1)
	go func() {
		s, err := w.stdout.ReadString('\n')
		ch <- line{s, err}
	}()
	select {
	case l := <-ch:
		return strings.TrimSpace(l.s), l.err
	case <-time.After(timeout):
		_ = w.cmd.Process.Kill() // ends the read above
		return "", errors.New("no answer in time")
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// capacityStep runs cfg.capProcs worker processes of impl with goroutines
// goroutines each, all on distinct keys, and measures the server and the
// clients over the same cfg.duration. inScript is impl's share of calls
// made from scripts per command (see redisinfo.Scripted).
func (b *bench) capacityStep(ctx context.Context, impl Impl, key string, goroutines int, inScript map[string]float64) (metrics, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, workerReadyTimeout+b.cfg.duration+workerExtraTime)
	defer cancel()
	workers := make([]*worker, b.cfg.capProcs)
	defer func() {
		for _, w := range workers {
			if w != nil {
				_ = w.stdin.Close()
				_ = w.cmd.Process.Kill()
				_ = w.cmd.Wait()
			}
		}
	}()
	for i := range workers {
		cmd := exec.CommandContext(ctx, exe, workerArg, "-impl", impl.Name, "-addr", b.addr,
			"-key", fmt.Sprintf("%s:p%d", key, i), "-goroutines", strconv.Itoa(goroutines),
			"-duration", b.cfg.duration.String(), "-bsm-backoff", b.cfg.bsmBackoff.String())
		w := &worker{cmd: cmd}
		cmd.Stderr = &w.stderr
		if w.stdin, err = cmd.StdinPipe(); err != nil {
			return nil, err
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		w.stdout = bufio.NewReader(out)
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("start worker: %w", err)
		}
		workers[i] = w
	}
	for i, w := range workers {
		if l, err := w.readLine(workerReadyTimeout); err != nil || l != "ready" {
			return nil, w.fail(fmt.Errorf("worker %d not ready: %q %v", i, l, err))
		}
	}
	before, err := b.info(ctx)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	for _, w := range workers {
		if _, err := io.WriteString(w.stdin, "go\n"); err != nil {
			return nil, w.fail(err)
		}
	}
	res := make([]workerResult, len(workers))
	for i, w := range workers {
		l, err := w.readLine(b.cfg.duration + workerExtraTime)
		if err == nil {
			err = json.Unmarshal([]byte(l), &res[i])
		}
		if err == nil && res[i].Err != "" {
			err = errors.New(res[i].Err)
		}
		if err != nil {
			return nil, w.fail(fmt.Errorf("worker %d: %w", i, err))
		}
	}
	after, err := b.info(ctx)
	if err != nil {
		return nil, err
	}
	return capacityMetrics(res, redisinfo.Sub(after, before), time.Since(t0), inScript), nil
}

// capacityMetrics turns the workers' results and the server's counters over
// one step into the step's metrics: rates are per second of each worker's
// own measurement, costs are per lock+unlock pair.
func capacityMetrics(res []workerResult, d redisinfo.Delta, window time.Duration, inScript map[string]float64) metrics {
	var pairs, clientCPU int64
	var rate float64
	for _, r := range res {
		pairs += r.Pairs
		clientCPU += r.CPU
		if r.Elapsed > 0 {
			rate += float64(r.Pairs) / time.Duration(r.Elapsed).Seconds()
		}
	}
	m := metrics{"ops/s": rate, "redis%": 100 * d.CPU / window.Seconds()}
	if pairs == 0 {
		return m
	}
	p := float64(pairs)
	var calls int64
	for _, n := range d.Calls {
		calls += n
	}
	topCalls, topUsec := d.TopLevel(inScript)
	m["usec/pair"] = topUsec * float64(time.Microsecond) / p
	m["cpu/pair"] = d.CPU * float64(time.Second) / p
	m["client/pair"] = float64(clientCPU) / p
	m["cmds/pair"] = float64(calls) / p
	m["top/pair"] = topCalls / p
	return m
}

// ramp measures steps 0, 1, … in turn and stops after the first step whose
// rate is not at least gain (0.05: 5 %) above the best rate before it: the
// server is saturated. It returns the rates measured, the index of the
// best, and whether it stopped because the rate had stopped rising (false:
// it ran out of steps while still gaining).
func ramp(steps int, gain float64, measure func(i int) (float64, error)) (rates []float64, best int, flat bool, err error) {
	for i := range steps {
		r, err := measure(i)
		if err != nil {
			return rates, best, false, err
		}
		rates = append(rates, r)
		if i > 0 && r < rates[best]*(1+gain) {
			if r > rates[best] {
				best = i
			}
			return rates, best, true, nil
		}
		if r > rates[best] {
			best = i
		}
	}
	return rates, best, false, nil
}

// capacity measures one implementation's capacity in one round: it raises
// the goroutines per worker process along cfg.capSteps until the rate stops
// rising, and reports the figures of the best step.
func (b *bench) capacity(ctx context.Context, impl Impl, key string) (metrics, error) {
	inScript, err := b.scripted(ctx, impl, key)
	if err != nil {
		return nil, fmt.Errorf("MONITOR calibration: %w", err)
	}
	var steps []metrics
	rates, best, flat, err := ramp(len(b.cfg.capSteps), b.cfg.capGain, func(i int) (float64, error) {
		g := b.cfg.capSteps[i]
		fmt.Fprintf(b.log, "  %d processes × %d goroutines\n", b.cfg.capProcs, g)
		m, err := b.capacityStep(ctx, impl, fmt.Sprintf("%s:g%d", key, g), g, inScript)
		if err != nil {
			return 0, err
		}
		steps = append(steps, m)
		return m["ops/s"], nil
	})
	if err != nil {
		return nil, err
	}
	m := steps[best]
	m["clients"] = float64(b.cfg.capProcs * b.cfg.capSteps[best])
	m["flat"] = 0
	if flat {
		m["flat"] = 1
	}
	for i, r := range rates {
		m[stepMetric(b.cfg.capSteps[i])] = r
	}
	return m, nil
}

func stepMetric(goroutines int) string { return fmt.Sprintf("ops/s@%d", goroutines) }

// scripted measures, once per implementation, which of its commands run
// inside scripts: it runs a few pairs on one instance while a MONITOR
// connection watches, and returns redisinfo.Scripted of what it saw.
func (b *bench) scripted(ctx context.Context, impl Impl, key string) (map[string]float64, error) {
	if s, ok := b.inScript[impl.Name]; ok {
		return s, nil
	}
	inst, err := impl.Open(b.addr, openOpts{})
	if err != nil {
		return nil, err
	}
	defer inst.Close()
	if err := warm(ctx, inst, key+":calibration"); err != nil {
		return nil, err
	}
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", b.addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(monitorTimeout))
	r := bufio.NewReader(conn)
	if _, err := io.WriteString(conn, "*1\r\n$7\r\nMONITOR\r\n"); err != nil {
		return nil, err
	}
	if l, err := r.ReadString('\n'); err != nil || l != "+OK\r\n" {
		return nil, fmt.Errorf("MONITOR answered %q, %v", l, err)
	}
	for range calibrationPairs {
		if err := pair(ctx, inst, key+":calibration"); err != nil {
			return nil, err
		}
	}
	const marker = "lockbench-monitor-end"
	if err := b.stats.Echo(ctx, marker).Err(); err != nil {
		return nil, err
	}
	var lines []redisinfo.MonitorLine
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		if strings.Contains(l, marker) {
			break
		}
		if m, ok := redisinfo.ParseMonitor(l, isSubcommand); ok {
			lines = append(lines, m)
		}
	}
	s := redisinfo.Scripted(lines)
	b.inScript[impl.Name] = s
	return s, nil
}

// isSubcommand reports whether c ("client|tracking") names a subcommand of
// one of Redis 7's container commands, as INFO commandstats does.
func isSubcommand(c string) bool {
	cmd, _, ok := strings.Cut(c, "|")
	return ok && slices.Contains(containers, cmd)
}

// containers are Redis 7's commands that INFO commandstats reports per
// subcommand.
var containers = []string{"acl", "client", "cluster", "command", "config", "function", "latency",
	"memory", "module", "object", "pubsub", "script", "slowlog", "xgroup", "xinfo"}

// capacityTable runs the capacity scenario for impls and writes its table.
func (b *bench) capacityTable(ctx context.Context, impls []Impl, out io.Writer) {
	cfg := b.cfg
	r := b.rounds(ctx, "capacity", implRunners(impls, all, b.capacity), cfg.rounds)
	steps := make([]string, len(cfg.capSteps))
	for i, g := range cfg.capSteps {
		steps[i] = strconv.Itoa(cfg.capProcs * g)
	}
	usPair := func(v float64) string { return fmt.Sprintf("%.1f µs", v/float64(time.Microsecond)) }
	vsRedislock := func(head, metric string) column {
		return column{head, func(r *results, name string) string {
			v, ref := r.median(name, metric), r.median("redislock", metric)
			if math.IsNaN(v) || math.IsNaN(ref) || ref == 0 {
				return "–"
			}
			return fmt.Sprintf("%.2f×", v/ref)
		}}
	}
	table{
		title: fmt.Sprintf("Capacity: %d client processes, each with more and more goroutines on distinct keys, until Redis saturates", cfg.capProcs),
		notes: []string{
			fmt.Sprintf("Each step starts %d processes of this binary (one instance each) with n goroutines each, all on their own keys, and measures them together for %v; total clients per step: %s. The ramp stops at the first step that gains less than %.0f %% over the best before it.", cfg.capProcs, cfg.duration, strings.Join(steps, ", "), 100*cfg.capGain),
			"clients: goroutines of all processes at the best step; pairs/s: lock+unlock pairs per second at that step, all processes together (median over rounds); saturated: rounds whose ramp stopped rising before the last step.",
			"Redis CPU: the server's used_cpu_user + used_cpu_sys over the step as a share of one core (100 % = its main thread is busy all the time).",
			"Redis cmdstats/pair: INFO commandstats usec of the commands clients sent, per pair (commands run inside scripts are left out, as the script's time includes them; which commands a client runs inside scripts is measured once per implementation with MONITOR on a few pairs); Redis CPU/pair: used_cpu_user + used_cpu_sys per pair, which includes reading, parsing and replying.",
			"client CPU/pair: user + system CPU time of the client processes during the measurement (getrusage), per pair.",
			"cmds/pair: INFO commandstats calls per pair, commands inside scripts included; sent/pair: the commands clients sent.",
			"ramp: pairs/s at each step measured, as total clients: pairs/s (medians over the rounds that reached the step).",
			"× best peer: pairs/s over the best of " + strings.Join(peerNames, ", ") + "; ÷ redislock: the cost per pair over bsm/redislock's.",
		},
		cols: []column{
			num("clients", "clients", count), num("pairs/s", "ops/s", rate), ratio("× best peer", "ops/s", true),
			agg("saturated", "flat", (*results).total, count), num("Redis CPU", "redis%", pct),
			num("Redis cmdstats/pair", "usec/pair", usPair), vsRedislock("cmdstats ÷ redislock", "usec/pair"),
			num("Redis CPU/pair", "cpu/pair", usPair), vsRedislock("CPU ÷ redislock", "cpu/pair"),
			num("client CPU/pair", "client/pair", usPair), vsRedislock("client ÷ redislock", "client/pair"),
			num("cmds/pair", "cmds/pair", frac), num("sent/pair", "top/pair", frac),
			{"ramp", func(r *results, name string) string {
				var parts []string
				for i, g := range cfg.capSteps {
					if v := r.median(name, stepMetric(g)); !math.IsNaN(v) {
						parts = append(parts, fmt.Sprintf("%s: %.0f", steps[i], v))
					}
				}
				if len(parts) == 0 {
					return "–"
				}
				return strings.Join(parts, " · ")
			}},
		},
	}.render(out, r)
}
