//go:build linux

package faulttest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/disgolock/disgo/backend/goredis"
	"github.com/disgolock/disgo/internal/redistest"
	"github.com/disgolock/disgo/locker"
)

// patience bounds every wait of the coordinator for something that must
// happen; reaching it is a failure, not a measurement.
const patience = 20 * time.Second

// env is one scenario's world: a redis-server of its own, an admin client
// on it, and the worker processes. Everything is torn down in t.Cleanup.
type env struct {
	t       *testing.T
	adapter string // goredis | rueidis
	mode    string // fair | barging
	srv     *redistest.Server
	admin   *redis.Client
	start   int64 // mono at creation: log times are relative to it

	mu      sync.Mutex
	workers []*worker      // every worker ever spawned, in order
	log     []string       // time line of events, for failure reports
	views   *goredis.Store // on admin, for inspecting read-write locks and semaphores; see kindView
}

func newEnv(t *testing.T, adapter, mode string) *env {
	t.Helper()
	e := &env{t: t, adapter: adapter, mode: mode, start: mono()}
	e.srv = redistest.Start(t)
	e.admin = redis.NewClient(&redis.Options{Addr: e.srv.Addr, ContextTimeoutEnabled: true, DialTimeout: time.Second})
	t.Cleanup(e.cleanup)
	return e
}

func (e *env) fair() bool { return e.mode == "fair" }

// rel renders a time of the shared clock relative to the env's start.
func (e *env) rel(ts int64) string {
	if ts == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fms", float64(ts-e.start)/1e6)
}

// note adds a line to the time line.
func (e *env) note(format string, a ...any) {
	line := e.rel(mono()) + " " + fmt.Sprintf(format, a...)
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.log) < 20000 {
		e.log = append(e.log, line)
	}
}

// cleanup kills every worker, checks their stderr for data races and
// panics, and prints the time line if the test failed.
func (e *env) cleanup() {
	e.mu.Lock()
	ws := append([]*worker(nil), e.workers...)
	e.mu.Unlock()
	for _, w := range ws {
		w.kill()
	}
	for _, w := range ws {
		out := w.stderr.String()
		if strings.Contains(out, "WARNING: DATA RACE") || strings.Contains(out, "panic: ") || strings.Contains(out, "fatal error: ") {
			e.t.Errorf("worker %s (pid %d) reported on stderr:\n%s", w.name, w.pid, out)
		}
	}
	if e.t.Failed() {
		e.mu.Lock()
		lines := e.log
		if len(lines) > 400 {
			lines = lines[len(lines)-400:]
		}
		e.t.Logf("time line (last %d events):\n%s", len(lines), strings.Join(lines, "\n"))
		e.mu.Unlock()
		for _, w := range ws {
			if s := w.stderr.String(); s != "" {
				e.t.Logf("stderr of worker %s:\n%s", w.name, s)
			}
		}
	}
	if e.views != nil {
		_ = e.views.Close()
	}
	_ = e.admin.Close()
}

// forceRelease frees the lock of name whoever holds it, as an operator
// would, through a Locker of the coordinator's own on the admin client.
func (e *env) forceRelease(ctx context.Context, name string) error {
	s, err := goredis.New(e.admin, goredis.Options{})
	if err != nil {
		return err
	}
	defer s.Close()
	mode := locker.Fair
	if !e.fair() {
		mode = locker.Barging
	}
	l, err := locker.New(s, locker.Options[string]{Mode: mode})
	if err != nil {
		return err
	}
	defer l.Close()
	return l.ForceRelease(ctx, name)
}

// config returns the default worker configuration of this env.
func (e *env) config(name string) workerConfig {
	return workerConfig{
		Name:             name,
		Adapter:          e.adapter,
		Addr:             e.srv.Addr,
		Mode:             e.mode,
		RenewLease:       time.Second,
		WaiterTTL:        time.Second,
		FallbackInterval: time.Second,
		RequestTimeout:   2 * time.Second,
	}
}

// worker is the coordinator's side of one worker process.
type worker struct {
	e      *env
	name   string
	cfg    workerConfig
	cmd    *exec.Cmd
	pid    int
	index  int // in env.workers
	stdin  io.WriteCloser
	inMu   sync.Mutex
	ready  chan event
	exited chan struct{}
	stderr *tailBuffer

	nextID atomic.Int64

	mu       sync.Mutex
	calls    map[int64]*call     // awaiting their return
	holds    map[string]*holdRec // by handle
	ops      []*call             // lock and release calls, in the order sent
	killedAt int64
	stopped  bool
	pauses   [][2]int64 // SIGSTOP to SIGCONT (0 while stopped), oldest first
	gone     bool       // the process was reaped and its calls ended: no new call may wait
}

// call is one command sent to a worker and, once done is closed, its
// outcome.
type call struct {
	w      *worker
	cmd    command
	sent   int64
	invoke int64 // the worker's invoke time (lock, release); 0 if it never began; under w.mu
	done   chan struct{}
	res    event // valid once done is closed; Kinds has kindExited if the worker died first
}

// holdRec is what the coordinator knows of one held lock.
type holdRec struct {
	w        *worker
	handle   string
	lock     *call
	renew    bool
	acquired int64 // return of the lock call
	fence    int64
	owner    string
	deadline int64 // latest lease deadline the worker reported
	doneAt   int64 // when Done closed, 0 while open
	doneErr  string
	doneKind []string
	doneCh   chan struct{}
	releases []*call
}

// spawn starts a worker process with cfg and waits until it is ready; it
// fails the test if it cannot. Call it from the test goroutine.
func (e *env) spawn(cfg workerConfig) *worker {
	e.t.Helper()
	w, err := e.trySpawn(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return w
}

// trySpawn is spawn for any goroutine: it returns the error instead.
func (e *env) trySpawn(cfg workerConfig) (*worker, error) {
	js, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	w := &worker{
		e: e, name: cfg.Name, cfg: cfg,
		ready: make(chan event, 1), exited: make(chan struct{}),
		stderr: &tailBuffer{max: 16 << 10},
		calls:  make(map[int64]*call), holds: make(map[string]*holdRec),
	}
	w.cmd = exec.Command(os.Args[0], "-test.run=^$")
	w.cmd.Env = append(os.Environ(), workerEnv+"="+string(js))
	w.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // no orphans if the coordinator dies
	w.cmd.Stderr = w.stderr
	if w.stdin, err = w.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := w.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	t0 := mono()
	if err := w.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start worker %s: %w", cfg.Name, err)
	}
	w.pid = w.cmd.Process.Pid
	e.mu.Lock()
	w.index = len(e.workers)
	e.workers = append(e.workers, w)
	e.mu.Unlock()
	go w.read(stdout)
	select {
	case ev := <-w.ready:
		if now := mono(); ev.T < t0 || ev.T > now {
			return nil, fmt.Errorf("worker %s: its CLOCK_MONOTONIC (%d) is not the coordinator's (%d..%d)", w.name, ev.T, t0, now)
		}
		e.note("%s ready (pid %d, %s, %s) after %s", w.name, w.pid, cfg.Adapter, cfg.Mode, ms(ev.T-t0))
		return w, nil
	case <-w.exited:
		return nil, fmt.Errorf("worker %s exited before it was ready: %v\n%s", w.name, w.cmd.ProcessState, w.stderr.String())
	case <-time.After(patience):
		return nil, fmt.Errorf("worker %s not ready within %v:\n%s", w.name, patience, w.stderr.String())
	}
}

// read dispatches the worker's events until its stdout ends, then reaps
// the process and ends every call still waiting.
func (w *worker) read(stdout io.Reader) {
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var ev event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil || ev.Ev == "" {
			_, _ = fmt.Fprintf(w.stderr, "[stdout] %s\n", sc.Text())
			continue
		}
		w.dispatch(ev)
	}
	_ = w.cmd.Wait()
	w.mu.Lock()
	w.gone = true
	for id, c := range w.calls {
		delete(w.calls, id)
		c.res = event{Ev: "return", ID: id, Op: c.cmd.Op, Handle: c.cmd.Handle, Kinds: []string{kindExited}, Err: "worker exited"}
		close(c.done)
	}
	w.mu.Unlock()
	w.e.note("%s exited: %v", w.name, w.cmd.ProcessState)
	close(w.exited)
}

func (w *worker) dispatch(ev event) {
	e := w.e
	w.mu.Lock()
	defer w.mu.Unlock()
	switch ev.Ev {
	case "ready":
		w.ready <- ev
	case "invoke":
		if c := w.calls[ev.ID]; c != nil {
			c.invoke = ev.T
		}
	case "return":
		c := w.calls[ev.ID]
		if c == nil {
			return
		}
		delete(w.calls, ev.ID)
		c.res = ev
		switch {
		case c.cmd.Op == "lock" && ev.OK:
			h := &holdRec{w: w, handle: c.cmd.Handle, lock: c, renew: c.cmd.Lease == 0, acquired: ev.T,
				fence: ev.Fence, owner: ev.Owner, deadline: ev.Deadline, doneCh: make(chan struct{})}
			w.holds[c.cmd.Handle] = h
			e.note("%s %s acquired fence %d (invoked %s, lease until %s)", w.name, c.cmd.Handle, ev.Fence, e.rel(c.invoke), e.rel(ev.Deadline))
		case c.cmd.Op == "lock" || c.cmd.Op == "release":
			e.note("%s %s %s -> ok=%v %v %s", w.name, c.cmd.Op, c.cmd.Handle, ev.OK, ev.Kinds, ev.Err)
		}
		close(c.done)
	case "done":
		if h := w.holds[ev.Handle]; h != nil && h.doneAt == 0 {
			h.doneAt, h.doneErr, h.doneKind = ev.T, ev.Err, ev.Kinds
			if ev.Deadline > h.deadline && !has(ev.Kinds, kindReleased) {
				h.deadline = ev.Deadline
			}
			close(h.doneCh)
			e.note("%s %s done: %v %s", w.name, ev.Handle, ev.Kinds, ev.Err)
		}
	case "deadline":
		if h := w.holds[ev.Handle]; h != nil && h.doneAt == 0 {
			h.deadline = ev.Deadline
		}
	}
}

// send sends a command and returns its call.
func (w *worker) send(cmd command) *call {
	cmd.ID = w.nextID.Add(1)
	c := &call{w: w, cmd: cmd, done: make(chan struct{})}
	w.mu.Lock()
	if w.gone {
		c.res = event{Ev: "return", ID: cmd.ID, Op: cmd.Op, Handle: cmd.Handle, Kinds: []string{kindExited}, Err: "worker exited"}
		close(c.done)
		w.mu.Unlock()
		return c
	}
	w.calls[cmd.ID] = c
	if cmd.Op == "lock" || cmd.Op == "release" {
		w.ops = append(w.ops, c)
	}
	if cmd.Op == "release" {
		if h := w.holds[cmd.Handle]; h != nil {
			h.releases = append(h.releases, c)
		}
	}
	w.mu.Unlock()
	line, _ := json.Marshal(cmd)
	w.inMu.Lock()
	c.sent = mono()
	_, err := w.stdin.Write(append(line, '\n'))
	w.inMu.Unlock()
	if err != nil {
		// The worker is gone: read ends the call when it reaps it (the
		// call was registered before read could end the others).
		w.e.note("%s: send %s: %v", w.name, cmd.Op, err)
	}
	return c
}

// lock asks the worker to take name: with a fixed lease, or renewed when
// lease is 0. The handle names the lock in later commands.
func (w *worker) lock(name string, wait, lease time.Duration) *call {
	return w.lockAs(lockSpec{}, name, wait, lease)
}

// lockSpec says which kind of lock a lock command takes (see
// command.Kind); the zero value is the mutex.
type lockSpec struct {
	Kind    string
	Side    string
	Permits int
}

// lockAs is lock of the kind of lock ls names.
func (w *worker) lockAs(ls lockSpec, name string, wait, lease time.Duration) *call {
	handle := w.name + "#" + strconv.FormatInt(w.nextID.Load()+1, 10)
	return w.send(command{Op: "lock", Name: name, Handle: handle, Wait: wait, Lease: lease, Kind: ls.Kind, Side: ls.Side, Permits: ls.Permits})
}

func (w *worker) release(handle string) *call {
	return w.send(command{Op: "release", Handle: handle})
}

// write makes a fenced write to the resource of the lock's name with the
// handle's fencing token, through the worker's own client.
func (w *worker) write(handle string) *call {
	return w.send(command{Op: "write", Handle: handle})
}

// wait waits up to d for the call's outcome.
func (c *call) wait(d time.Duration) (event, bool) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.done:
		return c.res, true
	case <-t.C:
		return event{}, false
	}
}

// peek returns the outcome if the call has returned.
func (c *call) peek() (event, bool) {
	select {
	case <-c.done:
		return c.res, true
	default:
		return event{}, false
	}
}

// must waits up to d for the outcome and fails the test without one.
func (c *call) must(t testing.TB, d time.Duration) event {
	t.Helper()
	ev, ok := c.wait(d)
	if !ok {
		t.Fatalf("%s: %s %s did not return within %v", c.w.name, c.cmd.Op, c.cmd.Handle, d)
	}
	return ev
}

// invoked returns the worker's invoke time of the call.
func (c *call) invoked() int64 {
	c.w.mu.Lock()
	defer c.w.mu.Unlock()
	return c.invoke
}

// hold returns a copy of what is known of the hold of handle.
func (w *worker) hold(handle string) (holdRec, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	h := w.holds[handle]
	if h == nil {
		return holdRec{}, false
	}
	return *h, true
}

// waitDone waits up to d for the Done of handle and returns the hold.
func (w *worker) waitDone(handle string, d time.Duration) (holdRec, bool) {
	w.mu.Lock()
	h := w.holds[handle]
	w.mu.Unlock()
	if h == nil {
		return holdRec{}, false
	}
	select {
	case <-h.doneCh:
	case <-time.After(d):
	}
	r, _ := w.hold(handle)
	return r, r.doneAt != 0
}

func (w *worker) signal(sig syscall.Signal) int64 {
	t := mono()
	if err := syscall.Kill(w.pid, sig); err != nil {
		w.e.note("%s: kill -%d: %v", w.name, sig, err)
	}
	return t
}

// stop sends SIGSTOP; cont SIGCONT. They return the time of the signal
// and record the pause in w.pauses.
// stop returns once every thread of the worker is stopped: kill(2) only
// queues the signal, and on a loaded machine a thread has been seen running
// for milliseconds after it (long enough to take a grant published after
// the signal), which would make a scenario test a running process.
func (w *worker) stop() int64 {
	t := mono()
	w.mu.Lock()
	w.stopped = true
	w.pauses = append(w.pauses, [2]int64{t, 0})
	w.mu.Unlock()
	w.signal(syscall.SIGSTOP)
	if err := awaitStopped(w.pid, 5*time.Second); err != nil {
		w.e.t.Fatalf("%s: %v", w.name, err)
	}
	w.e.note("SIGSTOP %s (stopped)", w.name)
	return t
}

// awaitStopped waits until every thread of process pid is in the stopped
// state ('T' or 't' in /proc/PID/task/TID/stat).
func awaitStopped(pid int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		stopped, err := allStopped(pid)
		if err != nil || stopped {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("process %d not stopped %v after SIGSTOP", pid, limit)
		}
		time.Sleep(200 * time.Microsecond)
	}
}

func allStopped(pid int) (bool, error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return false, err
	}
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name()))
		if err != nil {
			return false, err
		}
		// The state follows the command name, which is in parentheses.
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 || i+2 >= len(b) {
			return false, fmt.Errorf("unreadable /proc stat %q", b)
		}
		if st := b[i+2]; st != 'T' && st != 't' {
			return false, nil
		}
	}
	return true, nil
}

func (w *worker) cont() int64 {
	t := w.signal(syscall.SIGCONT)
	w.mu.Lock()
	w.stopped = false
	if n := len(w.pauses); n > 0 && w.pauses[n-1][1] == 0 {
		w.pauses[n-1][1] = t
	}
	w.mu.Unlock()
	w.e.note("SIGCONT %s", w.name)
	return t
}

// kill sends SIGKILL (kill -9) and waits until the process is reaped. It
// returns the time of the signal; killing a dead worker does nothing.
func (w *worker) kill() int64 {
	select {
	case <-w.exited:
		return 0
	default:
	}
	t := w.signal(syscall.SIGKILL)
	w.mu.Lock()
	if w.killedAt == 0 {
		w.killedAt = t
	}
	w.mu.Unlock()
	select {
	case <-w.exited:
	case <-time.After(patience):
		w.e.t.Errorf("worker %s (pid %d) still running %v after SIGKILL", w.name, w.pid, patience)
	}
	_ = w.stdin.Close()
	return t
}

func (w *worker) dead() bool {
	select {
	case <-w.exited:
		return true
	default:
		return false
	}
}

// acquisitions counts the successful acquisitions of every worker.
func (e *env) acquisitions() map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := map[string]int{}
	for _, w := range e.workers {
		w.mu.Lock()
		n[w.name] = len(w.holds)
		w.mu.Unlock()
	}
	return n
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.b = append(b.b, p...)
	if len(b.b) > b.max {
		b.b = append([]byte(nil), b.b[len(b.b)-b.max:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.b)
}

// --- the store, seen from the admin connection --------------------------

// lockKey is the Redis key of the lock record of name: the string
// "<count> <fence> <ticket> <owner>", with the lease as its TTL. The count
// may carry a flag of letters after its digits (as "1w"), which the
// parser keeps apart.
func lockKey(name string) string  { return "disgo:{" + name + "}:lock" }
func queueKey(name string) string { return "disgo:{" + name + "}:q" }

// lockRecord is a parsed lock record.
type lockRecord struct {
	Count  int
	Flags  string // letters after the count's digits
	Fence  int64
	Ticket string
	Owner  string
	PTTL   time.Duration
	Raw    string
}

func (e *env) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 5*time.Second)
}

// record reads the lock record of name; ok is false when the key does not
// exist.
func (e *env) record(name string) (rec lockRecord, ok bool, err error) {
	ctx, cancel := e.ctx()
	defer cancel()
	pipe := e.admin.Pipeline()
	get := pipe.Get(ctx, lockKey(name))
	pttl := pipe.PTTL(ctx, lockKey(name))
	_, _ = pipe.Exec(ctx)
	v, err := get.Result()
	if err == redis.Nil {
		return rec, false, nil
	}
	if err != nil {
		return rec, false, err
	}
	rec.Raw = v
	parts := strings.SplitN(v, " ", 4)
	if len(parts) != 4 {
		return rec, true, fmt.Errorf("lock record %q: want 4 fields", v)
	}
	digits := strings.TrimRightFunc(parts[0], func(r rune) bool { return r < '0' || r > '9' })
	rec.Flags = parts[0][len(digits):]
	if rec.Count, err = strconv.Atoi(digits); err != nil {
		return rec, true, fmt.Errorf("lock record %q: count: %v", v, err)
	}
	if rec.Fence, err = strconv.ParseInt(parts[1], 10, 64); err != nil {
		return rec, true, fmt.Errorf("lock record %q: fence: %v", v, err)
	}
	rec.Ticket, rec.Owner = parts[2], parts[3]
	rec.PTTL = pttl.Val()
	return rec, true, nil
}

// queueLen is the number of tickets in the fair queue of name.
func (e *env) queueLen(name string) int64 {
	ctx, cancel := e.ctx()
	defer cancel()
	n, _ := e.admin.ZCard(ctx, queueKey(name)).Result()
	return n
}

// waitQueued waits until the fair queue of name has n tickets; in barging
// mode it waits a moment for the waiters to have made their first attempt.
func (e *env) waitQueued(name string, n int64) {
	e.t.Helper()
	if !e.fair() {
		time.Sleep(150 * time.Millisecond)
		return
	}
	eventually(e.t, patience, fmt.Sprintf("%d tickets in the queue of %s", n, name), func() bool { return e.queueLen(name) >= n })
}

// clientKill runs CLIENT KILL TYPE typ (the admin connection is skipped)
// and returns how many connections it closed.
func (e *env) clientKill(typ string) (int64, error) {
	ctx, cancel := e.ctx()
	defer cancel()
	n, err := e.admin.Do(ctx, "CLIENT", "KILL", "TYPE", typ).Int64()
	e.note("CLIENT KILL TYPE %s: %d closed (%v)", typ, n, err)
	return n, err
}

// eventually polls cond every 5ms until it holds, and fails the test after d.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ms renders a duration in ns of the shared clock as milliseconds.
func ms(ns int64) string { return fmt.Sprintf("%.0fms", float64(ns)/1e6) }
