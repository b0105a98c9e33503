// Command lockbench measures disgo side by side with the best Go Redis
// locks (go-redsync/redsync, bsm/redislock, rueidis' rueidislock) on one
// Redis in one run, and prints markdown tables.
//
// It starts its own redis-server on a free loopback port (or uses -addr),
// interleaves the implementations over -rounds rounds so that ratios hold
// on a noisy machine, and reports medians over the rounds:
//
//	go run ./cmd/lockbench                       # everything, a few minutes
//	go run ./cmd/lockbench -scenarios lostwake -handoffs 100000 -only 'disgo-rueidis'
//
// Every loop is bounded in count and time, and all traffic goes to the one
// Redis server.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/disgolock/disgo/bench/internal/redisproc"
	"github.com/disgolock/disgo/bench/internal/stats"
)

// registry lists the disgo implementations. Each adapter's file adds its
// own in init, so that the command builds with the adapters that exist.
var registry []Impl

// scenarioNames in the order they run; "requests" is reported from the
// uncontended and contended runs.
var scenarioNames = []string{"uncontended", "parallel", "capacity", "contended", "handoff", "renewal", "lostwake", "rwhandoff", "kindcmds"}

type config struct {
	addr        string
	rounds      int
	duration    time.Duration
	only        *regexp.Regexp
	scenarios   []string
	contenders  int
	parallel    int
	held        int
	hold        time.Duration
	renewLease  time.Duration
	handoffs    int
	lostAfter   time.Duration
	settle      time.Duration
	waitTimeout time.Duration
	bsmBackoff  time.Duration
	cpuProfile  string
	capProcs    int
	capSteps    []int
	capGain     float64
	readers     int
	kindPairs   int
}

func parseFlags(args []string, errOut io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("lockbench", flag.ContinueOnError)
	fs.SetOutput(errOut)
	fs.StringVar(&c.addr, "addr", "", "Redis address host:port to use instead of starting a redis-server (its counters must not be disturbed by others)")
	fs.IntVar(&c.rounds, "rounds", 3, "rounds; implementations are interleaved in each, and medians over rounds are reported")
	fs.DurationVar(&c.duration, "duration", time.Second, "length of one timed measurement")
	only := fs.String("only", ".", "regular expression selecting implementations by name")
	scen := fs.String("scenarios", strings.Join(scenarioNames, ","), "comma-separated scenarios: "+strings.Join(scenarioNames, ", "))
	fs.IntVar(&c.contenders, "contenders", 16, "processes contending for one key (contended)")
	fs.IntVar(&c.parallel, "parallel", 32, "goroutines on distinct keys (parallel), and workers taking and releasing the held locks (renewal)")
	fs.IntVar(&c.held, "held", 10000, "auto-renewed locks held at once (renewal)")
	fs.DurationVar(&c.hold, "hold", 4*time.Second, "how long the held locks are held while requests are counted (renewal)")
	fs.DurationVar(&c.renewLease, "renew-lease", 3*time.Second, "disgo's RenewLease in the renewal scenario, so that renewal ticks fall within -hold (disgo renews at a third of it)")
	fs.IntVar(&c.handoffs, "handoffs", 200, "hand-offs per implementation in the lost wake-up count (lostwake), spread over the rounds")
	fs.DurationVar(&c.lostAfter, "lost-after", time.Second, "a hand-off slower than this counts as a lost wake-up (lostwake)")
	fs.DurationVar(&c.settle, "settle", time.Millisecond, "the holder releases a random settle to 2·settle after the waiter started waiting (handoff, lostwake)")
	fs.DurationVar(&c.waitTimeout, "wait-timeout", 10*time.Second, "longest wait of one hand-off (handoff, lostwake)")
	fs.DurationVar(&c.bsmBackoff, "bsm-backoff", time.Millisecond, "bsm/redislock LinearBackoff retry interval")
	fs.IntVar(&c.capProcs, "capacity-procs", 4, "client processes of the capacity scenario (re-executions of this binary), one instance each")
	steps := fs.String("capacity-steps", "1,4,16,64", "goroutines per client process in the capacity scenario, in rising order: raised step by step until the rate stops rising")
	fs.Float64Var(&c.capGain, "capacity-gain", 0.05, "the capacity ramp stops at the first step that raises pairs/s by less than this share of the best rate before it")
	fs.IntVar(&c.readers, "readers", 8, "readers waiting together for a write lock's release (rwhandoff)")
	fs.IntVar(&c.kindPairs, "kind-pairs", 500, "uncontended acquire+release pairs counted per kind of lock (kindcmds)")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run (all clients are in this process) to this file, for go tool pprof")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	var err error
	if c.capSteps, err = parseSteps(*steps); err != nil {
		return c, fmt.Errorf("-capacity-steps: %w", err)
	}
	if c.only, err = regexp.Compile(*only); err != nil {
		return c, fmt.Errorf("-only: %w", err)
	}
	for s := range strings.SplitSeq(*scen, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if !slices.Contains(scenarioNames, s) {
			return c, fmt.Errorf("-scenarios: unknown scenario %q (known: %s)", s, strings.Join(scenarioNames, ", "))
		}
		c.scenarios = append(c.scenarios, s)
	}
	switch {
	case c.rounds < 1 || c.contenders < 2 || c.parallel < 1 || c.held < 1 || c.handoffs < 0 || c.capProcs < 1 || c.readers < 1 || c.kindPairs < 1:
		return c, errors.New("-rounds, -parallel, -held, -capacity-procs, -readers and -kind-pairs must be at least 1, -contenders at least 2, -handoffs not negative")
	case c.capGain < 0 || math.IsNaN(c.capGain):
		return c, errors.New("-capacity-gain must not be negative")
	case c.duration <= 0 || c.hold <= 0 || c.lostAfter <= 0 || c.waitTimeout <= 0 || c.settle < 0 || c.bsmBackoff <= 0:
		return c, errors.New("durations must be positive (-settle may be 0)")
	case c.renewLease < 10*time.Millisecond:
		return c, errors.New("-renew-lease must be at least 10ms")
	}
	return c, nil
}

// parseSteps reads a comma-separated list of rising positive counts.
func parseSteps(s string) ([]int, error) {
	var steps []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive count", f)
		}
		if len(steps) > 0 && n <= steps[len(steps)-1] {
			return nil, fmt.Errorf("%d does not rise above %d", n, steps[len(steps)-1])
		}
		steps = append(steps, n)
	}
	return steps, nil
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == workerArg {
		os.Exit(workerMain(os.Args[2:], os.Stdin, os.Stdout))
	}
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "lockbench:", err)
		os.Exit(2)
	}
	if cfg.cpuProfile != "" {
		f, err := os.Create(cfg.cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "lockbench: -cpuprofile:", err)
			os.Exit(2)
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, cfg, "lockbench "+strings.Join(os.Args[1:], " "), os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "lockbench:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

// bench is one run of the command.
type bench struct {
	cfg   config
	addr  string
	stats *redis.Client                   // reads INFO; its own connection
	log   io.Writer                       // progress
	calls map[string]map[string]callTotal // scenario → implementation → totals

	res, resContended *results // the uncontended and contended results, for the requests table

	inScript map[string]map[string]float64 // implementation → command → share of calls from scripts
}

// run measures the selected scenarios and writes the report to out and
// progress to log. It stops the server it started before it returns,
// also when ctx is cancelled.
func run(ctx context.Context, cfg config, cmdline string, out, log io.Writer) error {
	addr, where := cfg.addr, "given by -addr"
	if addr == "" {
		srv, err := redisproc.Start(ctx)
		if err != nil {
			return err
		}
		defer srv.Stop()
		addr, where = srv.Addr, "own redis-server, no persistence"
	}
	b := &bench{cfg: cfg, addr: addr, log: log, stats: newGoRedis(addr),
		calls: map[string]map[string]callTotal{"uncontended": {}, "contended": {}}, inScript: map[string]map[string]float64{}}
	defer b.stats.Close()
	s, err := b.info(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "## lockbench\n\n%s · %s %s/%s · %s · %d cores · Redis %s (%s on %s)\n\n`%s`\n\n",
		time.Now().Format("2006-01-02 15:04 MST"), runtime.Version(), runtime.GOOS, runtime.GOARCH,
		cpuModel(), runtime.NumCPU(), s.Version, where, addr, cmdline)

	impls := slices.DeleteFunc(allImpls(cfg.bsmBackoff), func(i Impl) bool {
		return !cfg.only.MatchString(i.Name)
	})
	fmt.Fprintf(out, "Medians of %d interleaved rounds of %v each, unless a table says otherwise. Implementations:\n\n", cfg.rounds, cfg.duration)
	for _, i := range impls {
		fmt.Fprintf(out, "- **%s**: %s\n", i.Name, i.Note)
	}
	for _, adapter := range []string{"goredis", "rueidis"} {
		if !slices.ContainsFunc(registry, func(i Impl) bool { return strings.HasPrefix(i.Name, "disgo-"+adapter) }) {
			fmt.Fprintf(out, "- disgo's %s adapter is not built into this binary.\n", adapter)
		}
	}
	for _, sc := range cfg.scenarios {
		if err := b.scenario(ctx, sc, impls, out); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted: %w", context.Cause(ctx))
		}
	}
	if slices.Contains(cfg.scenarios, "uncontended") || slices.Contains(cfg.scenarios, "contended") {
		b.requestsTable(impls, out)
	}
	return nil
}

// runner is one row of a scenario: an implementation or a reference.
type runner struct {
	name string
	run  func(ctx context.Context, key string) (metrics, error)
}

// rounds runs every runner once per round, in an order rotated by one each
// round, and collects the metrics.
func (b *bench) rounds(ctx context.Context, sc string, runners []runner, nrounds int) *results {
	r := newResults()
	for _, rn := range runners {
		r.row(rn.name)
	}
	for round := range nrounds {
		k := round % max(len(runners), 1)
		for _, rn := range slices.Concat(runners[k:], runners[:k]) {
			if ctx.Err() != nil {
				return r
			}
			fmt.Fprintf(b.log, "%s: round %d/%d: %s\n", sc, round+1, nrounds, rn.name)
			m, err := rn.run(ctx, fmt.Sprintf("lockbench:%s:%s:%d", sc, rn.name, round))
			if err != nil {
				fmt.Fprintf(b.log, "  %s failed: %v\n", rn.name, err)
				r.setText(rn.name, "error", fmt.Sprintf("round %d: %v", round+1, err))
				continue
			}
			r.add(rn.name, m)
		}
	}
	return r
}

// implRunners makes runners of f for the implementations that pass keep.
func implRunners(impls []Impl, keep func(Impl) bool, f func(context.Context, Impl, string) (metrics, error)) []runner {
	var rs []runner
	for _, i := range impls {
		if keep(i) {
			rs = append(rs, runner{i.Name, func(ctx context.Context, key string) (metrics, error) { return f(ctx, i, key) }})
		}
	}
	return rs
}

// all keeps every implementation of the scenarios where every key has one
// user, except the hand-off floor, which measures only hand-offs.
func all(i Impl) bool { return !i.HandOffFloor }

func waiting(i Impl) bool { return i.Waits }

// handingOff keeps the implementations that wait, and the hand-off floor.
func handingOff(i Impl) bool { return i.Waits || i.HandOffFloor }

// Names of the redis-benchmark reference rows.
const (
	rbSET         = "redis-benchmark 2×SET"
	rbEVALSHA     = "redis-benchmark 2×EVALSHA"
	rbPipelined   = "redis-benchmark EVALSHA -c 32 -P 16"
	rbOneClient   = "-c 1 -P 1"
	rbRatePerPair = 2 // a lock+unlock pair is two requests
)

// referenceRunners returns the redis-benchmark rows of scenario sc, if
// redis-benchmark is installed and -only selects them.
func (b *bench) referenceRunners(ctx context.Context, sc string) ([]runner, error) {
	if _, err := exec.LookPath("redis-benchmark"); err != nil {
		return nil, nil
	}
	sha, err := b.stats.ScriptLoad(ctx, minScript).Result()
	if err != nil {
		return nil, fmt.Errorf("SCRIPT LOAD: %w", err)
	}
	ref := func(name string, rate float64, args ...string) runner {
		return runner{name, func(ctx context.Context, key string) (metrics, error) {
			rps, err := redisBenchmark(ctx, b.addr, append([]string{"-n", requests(b.cfg.duration, rate)}, args...)...)
			if err != nil {
				return nil, err
			}
			return metrics{"ops/s": rps / rbRatePerPair}, nil
		}}
	}
	evalsha := []string{"evalsha", sha, "1", "lockbench:redis-benchmark", "v"}
	refs := []runner{ref(rbPipelined, 300_000, append([]string{"-c", "32", "-P", "16"}, evalsha...)...)}
	if sc == "uncontended" {
		refs = []runner{
			ref(rbSET, 40_000, "-c", "1", "-P", "1", "-t", "set"),
			ref(rbEVALSHA, 40_000, append([]string{"-c", "1", "-P", "1"}, evalsha...)...),
		}
	}
	return slices.DeleteFunc(refs, func(r runner) bool { return !b.cfg.only.MatchString(r.name) }), nil
}

// scenario runs scenario sc and writes its table.
func (b *bench) scenario(ctx context.Context, sc string, impls []Impl, out io.Writer) error {
	cfg := b.cfg
	switch sc {
	case "uncontended", "parallel":
		refs, err := b.referenceRunners(ctx, sc)
		if err != nil {
			return err
		}
		f := b.uncontended
		title := "Uncontended: lock+unlock pairs on one key, one goroutine"
		notes := []string{"pairs/s: lock+unlock pairs per second; p50/p99: latency of one pair."}
		if sc == "parallel" {
			f = b.parallel
			title = fmt.Sprintf("Parallel: %d goroutines of one process, each on its own key", cfg.parallel)
			notes = []string{"pairs/s: lock+unlock pairs per second, all goroutines together; p50/p99: latency of one pair."}
		}
		for _, rf := range refs {
			switch rf.name {
			case rbSET:
				notes = append(notes, "% of 2 RTT: pairs/s as a share of "+rbSET+" ("+rbOneClient+"), half its requests/s: the physical floor of two round trips.")
			case rbEVALSHA:
				notes = append(notes, rbEVALSHA+": half the requests/s of redis-benchmark ("+rbOneClient+") running a one-SET script.")
			case rbPipelined:
				notes = append(notes, rbPipelined+": half its requests/s running a one-SET script, the server's capacity for two scripts per pair.")
			}
		}
		notes = append(notes, "× best peer: pairs/s over the best of "+strings.Join(peerNames, ", ")+" in this run.")
		r := b.rounds(ctx, sc, append(implRunners(impls, all, f), refs...), cfg.rounds)
		cols := []column{num("pairs/s", "ops/s", rate), num("p50", "p50", dur), num("p99", "p99", dur)}
		if sc == "uncontended" {
			b.res = r
			cols = append(cols, column{"% of 2 RTT", func(r *results, name string) string {
				v, floor := r.median(name, "ops/s"), r.median(rbSET, "ops/s")
				if math.IsNaN(v) || math.IsNaN(floor) {
					return "–"
				}
				return pct(100 * v / floor)
			}}, num("Redis µs/pair", "usec/pair", usPair), vsRow("÷ redislock", "usec/pair", "redislock"),
				vsRow("÷ "+floor2Script, "usec/pair", floor2Script))
			notes = append(notes,
				"Redis µs/pair: INFO commandstats usec per pair of the commands the client sent, as in the capacity table (commands inside scripts left out, as the script's time includes them); ÷ redislock, ÷ "+floor2Script+": over that row's.")
		}
		cols = append(cols, ratio("× best peer", "ops/s", true))
		table{title: title, notes: notes, cols: cols}.render(out, r)

	case "capacity":
		b.capacityTable(ctx, impls, out)

	case "contended":
		r := b.rounds(ctx, sc, implRunners(impls, waiting, b.contended), cfg.rounds)
		b.resContended = r
		table{
			title: fmt.Sprintf("Contended: %d processes (a client and locker each) on one key", cfg.contenders),
			notes: []string{
				"acq/s: acquisitions per second, all processes together; wait: from calling Lock to holding, p50/p99 over all acquisitions.",
				"max wait: the longest wait in any round, including waits cut short by the end of the measurement.",
				"Jain: Jain's fairness index over the acquisitions per process (1 = equal shares); min/max: acquisitions of the least and the most served process.",
				"overlaps: times a process entered the critical section while another was in it (must be 0), summed over rounds.",
				"gave up: redsync Lock calls that failed after all their tries before the deadline and were called again, summed over rounds.",
				"× best peer: acq/s over the best peer's.",
			},
			cols: []column{
				num("acq/s", "acq/s", rate), num("p50 wait", "p50", dur), num("p99 wait", "p99", dur),
				agg("max wait", "max", (*results).highest, dur), num("Jain", "jain", func(v float64) string { return fmt.Sprintf("%.3f", v) }),
				num("min acq", "min", count), num("max acq", "maxacq", count),
				agg("overlaps", "overlaps", (*results).total, count), agg("gave up", "gaveup", (*results).total, count),
				ratio("× best peer", "acq/s", true),
			},
		}.render(out, r)

	case "handoff":
		r := b.rounds(ctx, sc, implRunners(impls, handingOff, func(ctx context.Context, impl Impl, key string) (metrics, error) {
			h, err := b.handoffs(ctx, impl, key, maxOpsPerWorker, cfg.duration)
			if err != nil {
				return nil, err
			}
			return handoffMetrics(h), nil
		}), cfg.rounds)
		table{
			title: "Hand-off: from just before the holder's release to the waiter in another process holding",
			notes: []string{
				fmt.Sprintf("The waiter starts waiting, the holder releases a random %v–%v later (so that pollers do not fall into step), then the two swap roles; each round runs for %v.", cfg.settle, 2*cfg.settle, cfg.duration),
				"n: hand-offs summed over rounds; p50/p99: medians over rounds; max: the largest in any round.",
				"failed: waits that ended without the lock (after -wait-timeout); overlaps: the waiter held while the holder had not released (must be 0).",
				"p50 ÷ best peer: p50 over the best (lowest) peer p50; below 1 is faster. p50 ÷ " + floorPublish + ": over that floor's, the fastest a hand-off by a pushed message can be here.",
				floorPublish + " (not a lock): the release is one SPUBLISH to the waiter's channel and the wait ends when the message arrives, on go-redis; the time of one command, its push to another connection and the wake-up of the waiting goroutine.",
				floorHandoffScript + " (not a lock): " + floorPublish + " whose release is one script running disgo's hand-off commands (GET, ZPOPMIN, HGET, HDEL, TIME, SET … GET, SET, SPUBLISH) without logic, on a queue entry the waiter wrote before waiting; what disgo's hand-off command set alone costs here.",
			},
			cols: []column{
				agg("n", "n", (*results).total, count), num("p50", "p50", dur), num("p99", "p99", dur),
				agg("max", "max", (*results).highest, dur), ratio("p50 ÷ best peer", "p50", false), vsRow("p50 ÷ "+floorPublish, "p50", floorPublish),
				agg("failed", "failed", (*results).total, count), agg("overlaps", "overlaps", (*results).total, count),
			},
		}.render(out, r)

	case "renewal":
		r := b.rounds(ctx, sc, implRunners(impls, func(i Impl) bool { return i.Renews }, b.renewal), 1)
		for _, i := range impls {
			if i.Waits && !i.Renews {
				r.setText(i.Name, "note", "n/a: no auto-renewal")
			}
		}
		table{
			title: fmt.Sprintf("Held locks: %d auto-renewed locks held at once in one process (one round)", cfg.held),
			notes: []string{
				fmt.Sprintf("goroutines and connections: growth of runtime.NumGoroutine and of Redis connected_clients from before the process was opened, while all locks are held; %d workers took the locks, so a connection pool may have grown to its limit.", cfg.parallel),
				fmt.Sprintf("reads/s and cmds/s: Redis total_reads_processed and total_commands_processed per second over %v of holding (renewal traffic; commands include those run inside scripts).", cfg.hold),
				fmt.Sprintf("disgo runs with RenewLease %v here (renewal every third of it); rueidislock with its defaults (extension every 2.5 s of 3 keys per lock).", cfg.renewLease),
				"lost: locks whose release failed because they were no longer held (must be 0).",
			},
			cols: []column{
				num("goroutines", "goroutines", count), num("connections", "conns", count),
				num("reads/s", "reads/s", rate), num("cmds/s", "cmds/s", rate), num("lost", "lost", count), txt("note", "note"),
			},
		}.render(out, r)

	case "rwhandoff":
		b.rwHandoffTable(ctx, impls, out)

	case "kindcmds":
		b.kindCommandsTable(ctx, impls, out)

	case "lostwake":
		per := (cfg.handoffs + cfg.rounds - 1) / cfg.rounds
		limit := time.Duration(per)*(cfg.waitTimeout+cfg.settle) + time.Minute
		r := b.rounds(ctx, sc, implRunners(impls, waiting, func(ctx context.Context, impl Impl, key string) (metrics, error) {
			h, err := b.handoffs(ctx, impl, key, per, limit)
			if err != nil {
				return nil, err
			}
			return handoffMetrics(h), nil
		}), cfg.rounds)
		table{
			title: fmt.Sprintf("Lost wake-ups: hand-offs slower than %v in %d hand-offs per implementation", cfg.lostAfter, per*cfg.rounds),
			notes: []string{
				"Hand-offs as in the hand-off table, counted rather than timed.",
				fmt.Sprintf("slow: hand-offs that took longer than %v, i.e. the waiter missed its wake-up and waited out a fallback or timeout; failed: waits that ended without the lock after %v.", cfg.lostAfter, cfg.waitTimeout),
			},
			cols: []column{
				agg("hand-offs", "n", (*results).total, count), agg("slow", "slow", (*results).total, count),
				agg("failed", "failed", (*results).total, count), num("p50", "p50", dur), num("p99", "p99", dur),
				agg("max", "max", (*results).highest, dur), agg("overlaps", "overlaps", (*results).total, count),
			},
		}.render(out, r)
	}
	return nil
}

func handoffMetrics(h handoffResult) metrics {
	return metrics{
		"n": float64(len(h.lat)), "p50": float64(stats.Percentile(h.lat, 50)), "p99": float64(stats.Percentile(h.lat, 99)),
		"max": float64(stats.Percentile(h.lat, 100)), "slow": float64(h.slow), "failed": float64(h.failed), "overlaps": float64(h.overlaps),
	}
}

// requestsTable writes the Redis requests per acquisition measured in the
// uncontended and contended scenarios.
func (b *bench) requestsTable(impls []Impl, out io.Writer) {
	r := newResults()
	for _, i := range impls {
		if i.HandOffFloor {
			continue // it takes part in no scenario counted here
		}
		for sc, res := range map[string]*results{"unc": b.res, "con": b.resContended} {
			if res == nil {
				continue
			}
			for _, m := range []string{"reads/acq", "cmds/acq"} {
				r.set(i.Name, sc+" "+m, res.vals[i.Name][m])
			}
		}
		for _, sc := range []string{"uncontended", "contended"} {
			if t, ok := b.calls[sc][i.Name]; ok {
				r.setText(i.Name, sc, breakdown(t.delta.Calls, t.acq))
			}
		}
	}
	table{
		title: "Redis requests per acquisition (from the uncontended and the contended runs)",
		notes: []string{
			"reads: INFO total_reads_processed per acquisition, i.e. requests unless a client pipelines; cmds: total_commands_processed per acquisition, which counts the commands inside scripts too (medians over rounds).",
			"commandstats: INFO commandstats calls per acquisition over all rounds (commands inside scripts included), most frequent first.",
			"Background traffic of the clients (pings, renewals) is included; an acquisition is one lock+unlock pair.",
		},
		cols: []column{
			num("uncontended reads", "unc reads/acq", frac), num("uncontended cmds", "unc cmds/acq", frac),
			num("contended reads", "con reads/acq", frac), num("contended cmds", "con cmds/acq", frac),
			txt("uncontended commandstats", "uncontended"), txt("contended commandstats", "contended"),
		},
	}.render(out, r)
}

// cpuModel is the first "model name" of /proc/cpuinfo, or "unknown CPU".
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}
