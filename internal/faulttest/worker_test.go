//go:build linux

package faulttest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"

	"github.com/disgolock/disgo/backend/goredis"
	rueidisbackend "github.com/disgolock/disgo/backend/rueidis"
	"github.com/disgolock/disgo/locker"
	"github.com/disgolock/disgo/locker/driver"
)

// workerProc is the state of a worker process (see runWorker).
type workerProc struct {
	cfg   workerConfig
	l     *locker.Locker[string]
	rw    *locker.RWLocker[string] // when cfg.Kind is rwLock
	sem   *locker.Locker[string]   // when cfg.Kind is semLock
	write func(ctx context.Context, key string, fence int64) (bool, error)
	close func()

	outMu sync.Mutex
	out   *json.Encoder

	mu    sync.Mutex
	holds map[string]*locker.Lock[string]
	wg    sync.WaitGroup
}

// runWorker is the main function of a worker process: it builds the store
// and the Locker from cfg, reports ready, and serves commands from stdin
// until stdin ends or an exit command. It returns the exit code.
func runWorker(cfgJSON string) int {
	var cfg workerConfig
	if err := json.Unmarshal([]byte(cfgJSON), &cfg); err != nil {
		fmt.Fprintf(os.Stderr, "faulttest worker: bad config: %v\n", err)
		return 2
	}
	w := &workerProc{cfg: cfg, out: json.NewEncoder(os.Stdout), holds: make(map[string]*locker.Lock[string])}
	if err := w.setup(); err != nil {
		fmt.Fprintf(os.Stderr, "faulttest worker %s: %v\n", cfg.Name, err)
		return 2
	}
	w.emit(event{Ev: "ready", T: mono(), PID: os.Getpid()})

	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 64<<10), 1<<20)
	for in.Scan() {
		var c command
		if err := json.Unmarshal(in.Bytes(), &c); err != nil {
			fmt.Fprintf(os.Stderr, "faulttest worker %s: bad command %q: %v\n", cfg.Name, in.Text(), err)
			continue
		}
		if c.Op == "exit" {
			break
		}
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			w.serve(c)
		}()
	}
	// The coordinator is gone or asked us to leave: no clean-up that could
	// block on the store matters any more.
	w.close()
	return 0
}

func (w *workerProc) setup() error {
	cfg := w.cfg
	opts := locker.Options[string]{
		RenewLease:       cfg.RenewLease,
		WaiterTTL:        cfg.WaiterTTL,
		FallbackInterval: cfg.FallbackInterval,
		RequestTimeout:   cfg.RequestTimeout,
	}
	switch cfg.Mode {
	case "fair":
		opts.Mode = locker.Fair
	case "barging":
		opts.Mode = locker.Barging
	default:
		return fmt.Errorf("unknown mode %q", cfg.Mode)
	}
	var (
		store interface {
			driver.Backend
			Close() error
		}
		closeClient func()
	)
	switch cfg.Adapter {
	case "goredis":
		c := redis.NewClient(&redis.Options{Addr: cfg.Addr, ContextTimeoutEnabled: true, DialTimeout: time.Second})
		s, err := goredis.New(c, goredis.Options{})
		if err != nil {
			return err
		}
		store, closeClient = s, func() { _ = c.Close() }
		w.write = func(ctx context.Context, key string, fence int64) (bool, error) {
			n, err := c.Eval(ctx, fencedWrite, []string{key}, strconv.FormatInt(fence, 10)).Int64()
			return n == 1, err
		}
	case "rueidis":
		c, err := rueidis.NewClient(rueidis.ClientOption{
			InitAddress:       []string{cfg.Addr},
			ForceSingleClient: true,
			DisableCache:      true,
			Dialer:            net.Dialer{Timeout: time.Second},
		})
		if err != nil {
			return err
		}
		s, err := rueidisbackend.New(c, rueidisbackend.Options{})
		if err != nil {
			return err
		}
		store, closeClient = s, c.Close
		w.write = func(ctx context.Context, key string, fence int64) (bool, error) {
			n, err := c.Do(ctx, c.B().Eval().Script(fencedWrite).Numkeys(1).Key(key).Arg(strconv.FormatInt(fence, 10)).Build()).AsInt64()
			return n == 1, err
		}
	default:
		return fmt.Errorf("unknown adapter %q", cfg.Adapter)
	}
	l, err := locker.New(store, opts)
	if err != nil {
		_ = store.Close()
		closeClient()
		return err
	}
	w.l = l
	switch cfg.Kind {
	case mutexLock:
	case rwLock:
		w.rw, err = locker.NewRW(store, opts)
	case semLock:
		w.sem, err = locker.NewSemaphore(store, cfg.Limit, opts)
	default:
		err = fmt.Errorf("unknown kind %q", cfg.Kind)
	}
	if err != nil {
		_ = l.Close()
		_ = store.Close()
		closeClient()
		return fmt.Errorf("kind %q: %w", cfg.Kind, err)
	}
	w.close = func() {
		_ = l.Close()
		if w.rw != nil {
			_ = w.rw.Close()
		}
		if w.sem != nil {
			_ = w.sem.Close()
		}
		_ = store.Close()
		closeClient()
	}
	return nil
}

// locker returns the Locker a lock command names, and its call options.
func (w *workerProc) locker(c command) (*locker.Locker[string], []locker.CallOption, error) {
	switch {
	case c.Kind == mutexLock:
		return w.l, nil, nil
	case c.Kind == rwLock && w.rw != nil && c.Side == "read":
		return w.rw.Read(), nil, nil
	case c.Kind == rwLock && w.rw != nil && c.Side == "write":
		return w.rw.Write(), nil, nil
	case c.Kind == semLock && w.sem != nil && c.Permits == 0:
		return w.sem, nil, nil
	case c.Kind == semLock && w.sem != nil:
		return w.sem, []locker.CallOption{locker.WithPermits(c.Permits)}, nil
	}
	return nil, nil, fmt.Errorf("faulttest worker: no Locker of kind %q side %q (configured kind %q)", c.Kind, c.Side, w.cfg.Kind)
}

// emit writes one event line to stdout.
func (w *workerProc) emit(ev event) {
	w.outMu.Lock()
	defer w.outMu.Unlock()
	_ = w.out.Encode(ev)
}

// reply reports the outcome of command c.
func (w *workerProc) reply(c command, ev event, err error) {
	ev.Ev, ev.ID, ev.Op, ev.Handle = "return", c.ID, c.Op, c.Handle
	if ev.T == 0 {
		ev.T = mono()
	}
	if err != nil {
		ev.OK = false
		ev.Err = err.Error()
		ev.Kinds = classify(err)
	}
	w.emit(ev)
}

func (w *workerProc) handle(name string) *locker.Lock[string] {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.holds[name]
}

var errNoHandle = errors.New("faulttest worker: no such handle")

func (w *workerProc) serve(c command) {
	ctx := context.Background()
	switch c.Op {
	case "lock":
		t0 := mono()
		w.emit(event{Ev: "invoke", ID: c.ID, Op: c.Op, Handle: c.Handle, T: t0})
		var h *locker.Lock[string]
		l, opts, err := w.locker(c)
		switch {
		case err != nil:
		case c.Lease == 0:
			h, err = l.LockWithRenewal(ctx, c.Name, c.Wait, opts...)
		default:
			h, err = l.Lock(ctx, c.Name, c.Wait, c.Lease, opts...)
		}
		t1 := mono()
		if err != nil {
			w.reply(c, event{T: t1}, err)
			return
		}
		w.mu.Lock()
		w.holds[c.Handle] = h
		w.mu.Unlock()
		w.reply(c, event{T: t1, OK: true, Fence: h.Fence(), Owner: h.Owner(), Deadline: monoOf(h.Deadline())}, nil)
		w.watch(c.Handle, h)
	case "release":
		h := w.handle(c.Handle)
		t0 := mono()
		w.emit(event{Ev: "invoke", ID: c.ID, Op: c.Op, Handle: c.Handle, T: t0})
		if h == nil {
			w.reply(c, event{Kinds: []string{kindNoHandle}}, errNoHandle)
			return
		}
		err := h.Release(ctx)
		w.reply(c, event{OK: err == nil}, err)
	case "write":
		h := w.handle(c.Handle)
		if h == nil {
			w.reply(c, event{}, errNoHandle)
			return
		}
		wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		ok, err := w.write(wctx, resourceKey(h.Name()), h.Fence())
		cancel()
		w.reply(c, event{OK: err == nil, Accepted: ok, Fence: h.Fence()}, err)
	case "fence", "owner":
		h := w.handle(c.Handle)
		if h == nil {
			w.reply(c, event{}, errNoHandle)
			return
		}
		w.reply(c, event{OK: true, Fence: h.Fence(), Owner: h.Owner(), Deadline: monoOf(h.Deadline())}, nil)
	case "ping":
		w.reply(c, event{OK: true, PID: os.Getpid()}, nil)
	default:
		w.reply(c, event{}, fmt.Errorf("unknown op %q", c.Op))
	}
}

// watch reports the deadline of h whenever it moves, and its end (Done),
// with the error Done left.
func (w *workerProc) watch(handle string, h *locker.Lock[string]) {
	last := h.Deadline()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-h.Done():
			t := mono()
			err := h.Err()
			ev := event{Ev: "done", Handle: handle, T: t, Deadline: monoOf(h.Deadline()), Kinds: classify(err)}
			if err != nil {
				ev.Err = err.Error()
			}
			w.emit(ev)
			return
		case <-tick.C:
			if d := h.Deadline(); !d.Equal(last) {
				last = d
				w.emit(event{Ev: "deadline", Handle: handle, T: mono(), Deadline: monoOf(d)})
			}
		}
	}
}
