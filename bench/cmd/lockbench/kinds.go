package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/disgolock/disgo/bench/internal/redisinfo"
	"github.com/disgolock/disgo/bench/internal/stats"
	"github.com/disgolock/disgo/locker"
	"github.com/disgolock/disgo/locker/driver"
)

// The scenarios of disgo's other kinds of lock: read-write locks
// (locker.NewRW) and counting semaphores (locker.NewSemaphore). The peers
// have neither, so only disgo's rows run them.

// kindClient is one client of the kinds scenarios: a store on a
// connection of its own and the Lockers of every kind on it.
type kindClient struct {
	store   driver.Backend
	mutex   *locker.Locker[string]
	rw      *locker.RWLocker[string]
	sem     *locker.Locker[string] // a semaphore of semLimit permits
	closers []io.Closer
}

// semLimit is the limit of the semaphores of the kinds scenarios.
const semLimit = 4

func openKinds(d *disgoOpen, addr string) (*kindClient, error) {
	store, closers, err := d.open(addr)
	if err != nil {
		return nil, err
	}
	k := &kindClient{store: store, closers: closers}
	opts := locker.Options[string]{Mode: d.mode}
	if k.mutex, err = locker.New(store, opts); err == nil {
		if k.rw, err = locker.NewRW(store, opts); err == nil {
			k.sem, err = locker.NewSemaphore(store, semLimit, opts)
		}
	}
	if err != nil {
		_ = k.Close()
		return nil, err
	}
	return k, nil
}

// Close closes the Lockers, then the store and the client.
func (k *kindClient) Close() error {
	var errs []error
	if k.mutex != nil {
		errs = append(errs, k.mutex.Close())
	}
	if k.rw != nil {
		errs = append(errs, k.rw.Close())
	}
	if k.sem != nil {
		errs = append(errs, k.sem.Close())
	}
	for _, c := range k.closers {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// lockKind is one kind of lock of the command counts.
type lockKind struct {
	name string
	lock func(ctx context.Context, k *kindClient, key string) (*locker.Lock[string], error)
}

var lockKinds = []lockKind{
	{"mutex", func(ctx context.Context, k *kindClient, key string) (*locker.Lock[string], error) {
		return k.mutex.LockWithRenewal(ctx, key, locker.WaitForever)
	}},
	{"read", func(ctx context.Context, k *kindClient, key string) (*locker.Lock[string], error) {
		return k.rw.Read().LockWithRenewal(ctx, key, locker.WaitForever)
	}},
	{"write", func(ctx context.Context, k *kindClient, key string) (*locker.Lock[string], error) {
		return k.rw.Write().LockWithRenewal(ctx, key, locker.WaitForever)
	}},
	{"semaphore 1 permit", func(ctx context.Context, k *kindClient, key string) (*locker.Lock[string], error) {
		return k.sem.LockWithRenewal(ctx, key, locker.WaitForever, locker.WithPermits(1))
	}},
}

func kindPair(ctx context.Context, k *kindClient, kind lockKind, key string) error {
	h, err := kind.lock(ctx, k, key)
	if err != nil {
		return fmt.Errorf("%s lock: %w", kind.name, err)
	}
	if err := h.Release(ctx); err != nil {
		return fmt.Errorf("%s release: %w", kind.name, err)
	}
	return nil
}

// kindCommands counts the Redis requests and commands of cfg.kindPairs
// uncontended acquire+release pairs of each kind of lock, on one client
// and one key per kind.
func (b *bench) kindCommands(ctx context.Context, impl Impl, key string) (*results, error) {
	r := newResults()
	k, err := openKinds(impl.disgo, b.addr)
	if err != nil {
		return nil, err
	}
	defer k.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	for _, kind := range lockKinds {
		kkey := key + ":" + kind.name
		for range warmOps {
			if err := kindPair(ctx, k, kind, kkey); err != nil {
				return nil, fmt.Errorf("warm-up: %w", err)
			}
		}
		before, err := b.info(ctx)
		if err != nil {
			return nil, err
		}
		for range b.cfg.kindPairs {
			if err := kindPair(ctx, k, kind, kkey); err != nil {
				return nil, err
			}
		}
		after, err := b.info(ctx)
		if err != nil {
			return nil, err
		}
		d := redisinfo.Sub(after, before)
		n := float64(b.cfg.kindPairs)
		row := impl.Name + " · " + kind.name
		r.add(row, metrics{"reads": float64(d.Reads) / n, "cmds": float64(d.Commands) / n})
		r.setText(row, "stats", breakdown(d.Calls, int64(b.cfg.kindPairs)))
	}
	return r, nil
}

// kindCommandsTable runs kindCommands for disgo's implementations and
// writes its table.
func (b *bench) kindCommandsTable(ctx context.Context, impls []Impl, out io.Writer) {
	all := newResults()
	for _, impl := range impls {
		if impl.disgo == nil || ctx.Err() != nil {
			continue
		}
		fmt.Fprintf(b.log, "kindcmds: %s\n", impl.Name)
		r, err := b.kindCommands(ctx, impl, "lockbench:kindcmds:"+impl.Name)
		if err != nil {
			fmt.Fprintf(b.log, "  %s failed: %v\n", impl.Name, err)
			all.setText(impl.Name, "error", err.Error())
			continue
		}
		for _, name := range r.order {
			all.row(name)
			for m, v := range r.vals[name] {
				all.set(name, m, v)
			}
			for m, v := range r.text[name] {
				all.setText(name, m, v)
			}
		}
	}
	table{
		title: fmt.Sprintf("Redis requests and commands per uncontended acquire+release pair, by kind of lock (%d pairs each, one client, one key)", b.cfg.kindPairs),
		notes: []string{
			"requests: INFO total_reads_processed per pair (one per request: disgo does not pipeline a pair); commands: total_commands_processed per pair, the commands scripts run included.",
			"commandstats: INFO commandstats calls per pair, most frequent first (commands inside scripts included).",
			"Every lock is LockWithRenewal (its renewal does not fire within the run), then Release; the semaphore has " + fmt.Sprint(semLimit) + " permits and each pair takes 1. Background traffic of the client is included.",
		},
		cols: []column{num("requests", "reads", frac), num("commands", "cmds", frac), txt("commandstats", "stats")},
	}.render(out, all)
}

// rwHandoffResult is what one round of read hand-offs measured.
type rwHandoffResult struct {
	each, last []time.Duration // release called → each reader's / the group's last reader's acquisition returned
	failed     int64           // hand-offs in which a reader did not get the lock
	overlaps   int64           // a reader held before the writer's release began
}

// rwHandoffs passes the lock of key from a writer to a group of
// cfg.readers readers, each on a client of its own, for cfg.duration: the
// writer takes the write lock; every reader asks for the read lock (in
// fair mode the bench waits until all of them are queued; in barging mode
// it waits 5 ms); the writer releases after a random settle to 2·settle;
// the time from the Release call to each reader's LockWithRenewal
// returning is one sample, and the largest of the group one sample of the
// last reader. The readers release, and the writer takes the lock again.
func (b *bench) rwHandoffs(ctx context.Context, impl Impl, key string) (rwHandoffResult, error) {
	var r rwHandoffResult
	w, err := openKinds(impl.disgo, b.addr)
	if err != nil {
		return r, err
	}
	defer w.Close()
	readers := make([]*kindClient, b.cfg.readers)
	for i := range readers {
		if readers[i], err = openKinds(impl.disgo, b.addr); err != nil {
			return r, err
		}
		defer readers[i].Close()
	}
	var insp driver.Inspector
	if rw, ok := w.store.(driver.RWLocker); ok {
		readView, _ := rw.RWLocks()
		insp, _ = readView.(driver.Inspector)
	}
	fair := impl.disgo.mode == locker.Fair
	if fair && insp == nil {
		return r, errors.New("the read view has no driver.Inspector: the queue cannot be watched")
	}
	name, err := w.rw.Read().Name(key)
	if err != nil {
		return r, err
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	for _, k := range append([]*kindClient{w}, readers...) {
		for range warmOps / 2 {
			if err := kindPair(wctx, k, lockKinds[1], key); err != nil {
				return r, fmt.Errorf("warm-up: %w", err)
			}
			if err := kindPair(wctx, k, lockKinds[2], key); err != nil {
				return r, fmt.Errorf("warm-up: %w", err)
			}
		}
	}
	type got struct {
		h   *locker.Lock[string]
		at  time.Time
		err error
	}
	start := time.Now()
	for i := 0; i < maxOpsPerWorker && time.Since(start) < b.cfg.duration && ctx.Err() == nil; i++ {
		lctx, cancel := context.WithTimeout(ctx, b.cfg.waitTimeout)
		wl, err := w.rw.Write().LockWithRenewal(lctx, key, locker.WaitForever)
		if err != nil {
			cancel()
			return r, fmt.Errorf("write lock: %w", err)
		}
		ch := make(chan got, len(readers))
		for _, rd := range readers {
			go func() {
				h, err := rd.rw.Read().LockWithRenewal(lctx, key, locker.WaitForever)
				ch <- got{h, time.Now(), err}
			}()
		}
		if fair {
			for {
				q, err := insp.InspectQueue(lctx, name)
				if err != nil {
					cancel()
					return r, fmt.Errorf("inspect the queue: %w", err)
				}
				if len(q) >= len(readers) {
					break
				}
				time.Sleep(200 * time.Microsecond)
			}
		} else {
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(b.cfg.settle + rand.N(b.cfg.settle+1))
		t0 := time.Now()
		uerr := wl.Release(ctx)
		var last time.Duration
		ok := true
		for range readers {
			g := <-ch
			if g.err != nil {
				ok = false
				continue
			}
			d := g.at.Sub(t0)
			if d < 0 {
				r.overlaps++
			}
			r.each = append(r.each, d)
			last = max(last, d)
			if err := g.h.Release(ctx); err != nil && uerr == nil {
				uerr = fmt.Errorf("read release: %w", err)
			}
		}
		cancel()
		if uerr != nil {
			return r, uerr
		}
		if ok {
			r.last = append(r.last, last)
		} else {
			r.failed++
		}
	}
	return r, nil
}

// rwHandoffTable runs rwHandoffs for disgo's implementations over the
// rounds and writes its table.
func (b *bench) rwHandoffTable(ctx context.Context, impls []Impl, out io.Writer) {
	keep := func(i Impl) bool { return i.disgo != nil }
	r := b.rounds(ctx, "rwhandoff", implRunners(impls, keep, func(ctx context.Context, impl Impl, key string) (metrics, error) {
		h, err := b.rwHandoffs(ctx, impl, key)
		if err != nil {
			return nil, err
		}
		return metrics{
			"n": float64(len(h.last)), "last p50": float64(stats.Percentile(h.last, 50)), "last p99": float64(stats.Percentile(h.last, 99)),
			"each p50": float64(stats.Percentile(h.each, 50)), "each p99": float64(stats.Percentile(h.each, 99)),
			"max": float64(slices.Max(append(h.last, 0))), "failed": float64(h.failed), "overlaps": float64(h.overlaps),
		}, nil
	}), b.cfg.rounds)
	table{
		title: fmt.Sprintf("Read hand-off: from the writer's Release call to a group of %d waiting readers holding the read lock", b.cfg.readers),
		notes: []string{
			fmt.Sprintf("A writer holds the write lock; %d readers, each on a client (connection, store, RWLocker) of its own in this process, call Read().LockWithRenewal; once all of them are queued (fair; barging: 5 ms later) and a random %v–%v more, the writer calls Release. Each round runs for %v.", b.cfg.readers, b.cfg.settle, 2*b.cfg.settle, b.cfg.duration),
			"each: the time to each reader's acquisition returning; last: to the group's last reader's, i.e. until the whole group holds. p50/p99: medians over rounds; max: the largest last in any round; n: hand-offs summed over rounds.",
			"failed: hand-offs in which a reader's wait ended without the lock (after -wait-timeout); overlaps: a reader held before the writer's Release was called (must be 0).",
		},
		cols: []column{
			agg("n", "n", (*results).total, count), num("last p50", "last p50", dur), num("last p99", "last p99", dur),
			agg("last max", "max", (*results).highest, dur), num("each p50", "each p50", dur), num("each p99", "each p99", dur),
			agg("failed", "failed", (*results).total, count), agg("overlaps", "overlaps", (*results).total, count),
		},
	}.render(out, r)
}
