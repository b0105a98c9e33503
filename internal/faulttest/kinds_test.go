//go:build linux

package faulttest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/disgolock/disgo/backend/goredis"
	"github.com/disgolock/disgo/fairqueue"
	"github.com/disgolock/disgo/locker/driver"
)

// The scenarios of the read-write locks (locker.NewRW) and the counting
// semaphores (locker.NewSemaphore), and the model their histories are
// checked against.

// Lock specs of the scenarios.
var (
	readLock  = lockSpec{Kind: rwLock, Side: "read"}
	writeLock = lockSpec{Kind: rwLock, Side: "write"}
)

func semPermits(n int) lockSpec { return lockSpec{Kind: semLock, Permits: n} }

// kindConfig is config for a worker with a Locker of kind (and limit, for
// a semaphore) besides its mutex Locker.
func (e *env) kindConfig(name, kind string, limit int) workerConfig {
	c := e.config(name)
	c.Kind, c.Limit = kind, limit
	return c
}

// kindView returns the driver view of kind (for rwLock, the read view:
// both views inspect the same lock) on a store of the coordinator's own,
// on the admin client.
func (e *env) kindView(kind string) (driver.Backend, error) {
	e.mu.Lock()
	if e.views == nil {
		s, err := goredis.New(e.admin, goredis.Options{})
		if err != nil {
			e.mu.Unlock()
			return nil, err
		}
		e.views = s
	}
	s := e.views
	e.mu.Unlock()
	var b driver.Backend = s
	switch kind {
	case rwLock:
		rw, ok := b.(driver.RWLocker)
		if !ok {
			return nil, fmt.Errorf("the goredis store has no read-write locks (driver.RWLocker)")
		}
		b, _ = rw.RWLocks()
	case semLock:
		sem, ok := b.(driver.Semaphorer)
		if !ok {
			return nil, fmt.Errorf("the goredis store has no semaphores (driver.Semaphorer)")
		}
		b = sem.Semaphores()
	}
	if b == nil {
		return nil, fmt.Errorf("the goredis store returned no view of kind %q", kind)
	}
	return b, nil
}

// inspect returns the state of the lock of kind and name, as the store's
// Inspector reports it.
func (e *env) inspect(kind, name string) driver.State {
	e.t.Helper()
	b, err := e.kindView(kind)
	if err != nil {
		e.t.Fatal(err)
	}
	in, ok := b.(driver.Inspector)
	if !ok {
		e.t.Fatalf("the %q view %T is no driver.Inspector", kind, b)
	}
	ctx, cancel := e.ctx()
	defer cancel()
	st, err := in.Inspect(ctx, name)
	if err != nil {
		e.t.Fatalf("inspect %s %q: %v", kind, name, err)
	}
	return st
}

// kindQueueLen is the number of tickets in the fair queue of the lock of
// kind and name, lapsed ones included.
func (e *env) kindQueueLen(kind, name string) int {
	e.t.Helper()
	b, err := e.kindView(kind)
	if err != nil {
		e.t.Fatal(err)
	}
	in, ok := b.(driver.Inspector)
	if !ok {
		e.t.Fatalf("the %q view %T is no driver.Inspector", kind, b)
	}
	ctx, cancel := e.ctx()
	defer cancel()
	q, err := in.InspectQueue(ctx, name)
	if err != nil {
		e.t.Fatalf("inspect the queue of %s %q: %v", kind, name, err)
	}
	return len(q)
}

// waitKindQueued is waitQueued for the lock of kind and name.
func (e *env) waitKindQueued(kind, name string, n int) {
	e.t.Helper()
	if !e.fair() {
		time.Sleep(150 * time.Millisecond)
		return
	}
	eventually(e.t, patience, fmt.Sprintf("%d tickets in the queue of %s %s", n, kind, name), func() bool { return e.kindQueueLen(kind, name) >= n })
}

// describeHolders renders the holdings of a state, for messages.
func describeHolders(st driver.State) string {
	var parts []string
	for _, h := range st.Holders {
		what := "read"
		switch {
		case h.Write:
			what = "write"
		case h.Permits > 0:
			what = fmt.Sprintf("%d permits", h.Permits)
		}
		parts = append(parts, fmt.Sprintf("%s %s fence %d ttl %v", h.Owner, what, h.Fence, h.TTL))
	}
	return fmt.Sprintf("[%s] used %d/%d, %d waiters", strings.Join(parts, "; "), st.Used, st.Limit, st.Waiters)
}

// --- the model of read-write locks and semaphores ----------------------

// heldEntry is one live hold in the state of sharedModel.
type heldEntry struct {
	Hold    int
	Write   bool
	Permits int
}

// sharedState is the set of live holds, sorted by Hold.
type sharedState []heldEntry

// sharedModel is the model of a lock that several holds may share: with a
// limit of 0 a read-write lock (any number of read holds, or one write
// hold), otherwise a semaphore of limit permits (holds whose permits sum
// to at most limit). Holds end as in the mutex model: by their release or
// by an implicit expire operation.
func sharedModel(limit int) porcupine.NondeterministicModel {
	fits := func(s sharedState, in mInput) bool {
		if limit > 0 {
			used := in.Permits
			for _, e := range s {
				used += e.Permits
			}
			return used <= limit
		}
		for _, e := range s {
			if in.Write || e.Write {
				return false
			}
		}
		return true
	}
	holds := func(s sharedState, id int) bool {
		return slices.ContainsFunc(s, func(e heldEntry) bool { return e.Hold == id })
	}
	with := func(s sharedState, in mInput) sharedState {
		n := append(sharedState(nil), s...)
		n = append(n, heldEntry{in.Hold, in.Write, in.Permits})
		slices.SortFunc(n, func(a, b heldEntry) int { return a.Hold - b.Hold })
		return n
	}
	without := func(s sharedState, id int) sharedState {
		return slices.DeleteFunc(append(sharedState(nil), s...), func(e heldEntry) bool { return e.Hold == id })
	}
	return porcupine.NondeterministicModel{
		Init: func() []any { return []any{sharedState(nil)} },
		Step: func(state, input, output any) []any {
			s, in, out := state.(sharedState), input.(mInput), output.(mOutput)
			switch in.Kind {
			case opAcquire:
				switch out.Out {
				case outOK:
					if !holds(s, in.Hold) && fits(s, in) {
						return []any{with(s, in)}
					}
					return nil
				case outUnknown:
					if !holds(s, in.Hold) && fits(s, in) {
						return []any{s, with(s, in)}
					}
					return []any{s}
				default:
					return []any{s}
				}
			case opRelease:
				switch out.Out {
				case outOK:
					if holds(s, in.Hold) {
						return []any{without(s, in.Hold)}
					}
					return nil
				case outNotHeld:
					if !holds(s, in.Hold) {
						return []any{s}
					}
					return nil
				default:
					if holds(s, in.Hold) {
						return []any{without(s, in.Hold), s}
					}
					return []any{s}
				}
			case opExpire:
				if holds(s, in.Hold) {
					return []any{without(s, in.Hold), s}
				}
				return []any{s}
			}
			return nil
		},
		Equal: func(a, b any) bool { return slices.Equal(a.(sharedState), b.(sharedState)) },
		DescribeOperation: func(input, output any) string {
			in, out := input.(mInput), output.(mOutput)
			kind := [...]string{"acquire", "release", "expire"}[in.Kind]
			res := [...]string{"ok", "fail", "notheld", "unknown"}[out.Out]
			return fmt.Sprintf("%s(%s, %s) -> %s", kind, in.Desc, shape(in.Write, in.Permits), res)
		},
		DescribeState: func(st any) string {
			s := st.(sharedState)
			if len(s) == 0 {
				return "free"
			}
			var parts []string
			for _, e := range s {
				parts = append(parts, fmt.Sprintf("#%d %s", e.Hold, shape(e.Write, e.Permits)))
			}
			return "held by " + strings.Join(parts, ", ")
		},
	}
}

func shape(write bool, permits int) string {
	switch {
	case write:
		return "write"
	case permits > 0:
		return fmt.Sprintf("%d permits", permits)
	}
	return "read"
}

// checkSharing returns the check of protected intervals for a lock whose
// holds may share it (see sharedModel): at the acquisition of every hold,
// the holds still protected then (see holdView.protectedUntil) must be
// compatible with it: no write hold on either side for a read-write lock
// (limit 0), and permits that sum to at most limit for a semaphore.
func checkSharing(limit int) func([]holdView) []string {
	return func(holds []holdView) []string {
		var bad []string
		for i, b := range holds {
			if b.void() {
				continue
			}
			var live []holdView
			used := b.permits
			for _, a := range holds[:i] {
				if b.acquired < a.protectedUntil() {
					live = append(live, a)
					used += a.permits
				}
			}
			var clash []string
			for _, a := range live {
				if limit > 0 || a.write || b.write {
					clash = append(clash, fmt.Sprintf("%s (%s, fence %d; lease until %s, release began %s, loss signalled %s)",
						a.desc, shape(a.write, a.permits), a.fence, relTo(a.deadline, b.acquired), relTo(a.relInv, b.acquired), relTo(a.signal, b.acquired)))
				}
			}
			switch {
			case limit > 0 && used > limit:
				bad = append(bad, fmt.Sprintf("%s (%d permits, fence %d) acquired while %d permits of others were held, %d of %d in use: %s",
					b.desc, b.permits, b.fence, used-b.permits, used, limit, strings.Join(clash, "; ")))
			case limit == 0 && len(clash) > 0:
				bad = append(bad, fmt.Sprintf("%s (%s, fence %d) acquired while others were protected (times relative to the acquisition): %s",
					b.desc, shape(b.write, b.permits), b.fence, strings.Join(clash, "; ")))
			}
			if len(bad) > 20 {
				break
			}
		}
		return bad
	}
}

// checkKindHistory checks the history of e against sharedModel(limit):
// linearizability, increasing fences, and compatible protected intervals.
func (e *env) checkKindHistory(limit int) history {
	e.t.Helper()
	what := "a read-write lock"
	if limit > 0 {
		what = fmt.Sprintf("a semaphore of %d permits", limit)
	}
	return e.checkHistoryAgainst(sharedModel(limit), what, checkSharing(limit))
}

// --- scenarios ---------------------------------------------------------

// rwReaderStoppedPastLease: a reader holding a renewed read lock, next to
// a second, live reader, is stopped (SIGSTOP) past its lease while a
// writer waits. The live reader leaves; the writer gets the lock only
// after the stopped reader's lease ended, with a greater fence. On SIGCONT
// the reader's guarded access is rejected by the fenced resource, its Done
// fires with ErrLost, its Release says not held, and the store names the
// writer alone.
func rwReaderStoppedPastLease(e *env) {
	t := e.t
	const lease = 600 * time.Millisecond
	cfg := e.kindConfig("r", rwLock, 0)
	cfg.RenewLease = lease
	r, r2, w := e.spawn(cfg), e.spawn(e.kindConfig("r2", rwLock, 0)), e.spawn(e.kindConfig("w", rwLock, 0))
	name := "rw"
	rr := r.lockAs(readLock, name, 0, 0).must(t, patience)
	wantOK(t, "the reader's read lock", rr)
	rr2 := r2.lockAs(readLock, name, 0, 10*time.Second).must(t, patience)
	wantOK(t, "the second reader's read lock, next to the first", rr2)
	if st := e.inspect(rwLock, name); len(st.Holders) != 2 {
		t.Errorf("two readers hold, the store lists %s", describeHolders(st))
	}
	wc := w.lockAs(writeLock, name, 10*time.Second, 5*time.Second)
	e.waitKindQueued(rwLock, name, 1)
	if ev := r.write(rr.Handle).must(t, patience); !ev.Accepted {
		t.Fatalf("the fenced resource rejected the reader's access while it held the read lock: %+v", ev)
	}
	time.Sleep(lease) // at least one renewal before the stop
	hold, _ := r.hold(rr.Handle)
	if hold.deadline <= rr.Deadline {
		t.Errorf("the reader's lease was not renewed in %v (deadline %s, at acquisition %s)", lease, e.rel(hold.deadline), e.rel(rr.Deadline))
	}
	tStop := r.stop()
	remaining := hold.deadline - tStop
	wantOK(t, "the second reader's release", r2.release(rr2.Handle).must(t, patience))

	wr, ok := wc.wait(patience)
	if !ok || !wr.OK {
		r.cont()
		t.Fatalf("the writer did not get the lock after the stopped reader's lease: %+v", wr)
	}
	t.Logf("reader stopped with %s of lease left: the writer acquired %s after SIGSTOP (%s past the lease)",
		ms(remaining), ms(wr.T-tStop), ms(wr.T-hold.deadline))
	if wr.T < hold.deadline-int64(deadlineSlack) {
		t.Errorf("the writer acquired %s before the stopped reader's lease deadline", ms(hold.deadline-wr.T))
	}
	if wr.Fence <= rr.Fence || wr.Fence <= rr2.Fence {
		t.Errorf("the writer's fence %d is not greater than the readers' %d and %d", wr.Fence, rr.Fence, rr2.Fence)
	}
	if ev := w.write(wr.Handle).must(t, patience); !ev.Accepted {
		t.Errorf("the fenced resource rejected the writer's write (fence %d)", wr.Fence)
	}

	time.Sleep(200 * time.Millisecond)
	tCont := r.cont()
	if ev := r.write(rr.Handle).must(t, patience); ev.Accepted || !ev.OK {
		t.Errorf("the fenced resource accepted the stopped reader's access with its old fence %d (writer's fence %d): %+v", rr.Fence, wr.Fence, ev)
	}
	hd, done := r.waitDone(rr.Handle, 5*time.Second)
	switch {
	case !done:
		t.Errorf("the stopped reader's Done did not close within 5s of SIGCONT")
	case !has(hd.doneKind, kindLost):
		t.Errorf("the stopped reader's Done closed with %v (%s), want ErrLost", hd.doneKind, hd.doneErr)
	default:
		t.Logf("loss signalled to the resumed reader %s after SIGCONT: %s", ms(hd.doneAt-tCont), hd.doneErr)
	}
	if ev := r.release(rr.Handle).must(t, patience); !has(ev.Kinds, kindNotHeld) {
		t.Errorf("the resumed reader's Release returned %v %s, want ErrNotHeld", ev.Kinds, ev.Err)
	}
	st := e.inspect(rwLock, name)
	if len(st.Holders) != 1 || !st.Holders[0].Write || st.Holders[0].Owner != wr.Owner || st.Owner != wr.Owner {
		t.Errorf("while the writer holds, the store lists %s (owner %q), want the writer %s alone", describeHolders(st), st.Owner, wr.Owner)
	}
	wantOK(t, "the writer's release", w.release(wr.Handle).must(t, patience))
	e.checkKindHistory(0)
}

// semHolderKilled: a semaphore of 3 permits, held by A (2 permits) and B
// (1) in two processes; D waits for 2, F for 1. A is killed (-9): its
// permits come back after its lease, not before, to one of the waiters
// (D, by FIFO, in fair mode), and B's release lets the other in. Then a
// short contended workload of holders of 1 and 2 permits, one of them
// killed while it holds. No hold ever takes a permit beyond the limit.
func semHolderKilled(e *env) {
	t := e.t
	const (
		limit = 3
		lease = 800 * time.Millisecond
	)
	cfg := func(name string) workerConfig {
		c := e.kindConfig(name, semLock, limit)
		c.RenewLease, c.WaiterTTL = lease, lease
		return c
	}
	a, b, d, f := e.spawn(cfg("a")), e.spawn(cfg("b")), e.spawn(cfg("d")), e.spawn(cfg("f"))
	name := "sem"
	ar := a.lockAs(semPermits(2), name, 0, 0).must(t, patience)
	wantOK(t, "A's 2 permits", ar)
	br := b.lockAs(semPermits(1), name, 0, 0).must(t, patience)
	wantOK(t, "B's permit", br)
	if st := e.inspect(semLock, name); st.Used != limit || st.Limit != limit || len(st.Holders) != 2 {
		t.Errorf("A holds 2 permits and B 1, the store lists %s", describeHolders(st))
	}
	dc := d.lockAs(semPermits(2), name, 10*time.Second, 5*time.Second)
	e.waitKindQueued(semLock, name, 1)
	fc := f.lockAs(semPermits(1), name, 10*time.Second, 5*time.Second)
	e.waitKindQueued(semLock, name, 2)
	time.Sleep(150 * time.Millisecond)
	hold, _ := a.hold(ar.Handle)
	tKill := a.kill()
	remaining := hold.deadline - tKill

	var first, second *call
	select {
	case <-dc.done:
		first, second = dc, fc
	case <-fc.done:
		first, second = fc, dc
	case <-time.After(patience):
		t.Fatalf("no waiter got A's permits within %v of the kill", patience)
	}
	r1 := first.res
	wantOK(t, first.w.name+"'s permits after A's kill", r1)
	took := r1.T - tKill
	t.Logf("kill -9 of A (2 of 3 permits) with %s of lease left: %s (%d permits) acquired %s later (%s beyond the lease)",
		ms(remaining), first.w.name, max(first.cmd.Permits, 1), ms(took), ms(took-remaining))
	if r1.T < hold.deadline-int64(deadlineSlack) {
		t.Errorf("%s acquired %s before the killed A's lease deadline: A's permits came back early", first.w.name, ms(hold.deadline-r1.T))
	}
	if took > remaining+int64(margin) {
		t.Errorf("%s acquired %s after the kill, beyond the remaining lease %s plus %v", first.w.name, ms(took), ms(remaining), margin)
	}
	if e.fair() && first != dc {
		t.Errorf("fair mode: F (1 permit) acquired before D (2 permits), which queued first")
	}
	time.Sleep(150 * time.Millisecond)
	if ev, ok := second.peek(); ok {
		t.Errorf("%s returned %v %v while B and %s held all 3 permits", second.w.name, ev.OK, ev.Kinds, first.w.name)
	}
	cb := b.release(br.Handle)
	wantOK(t, "B's release", cb.must(t, patience))
	r2 := second.must(t, patience)
	wantOK(t, second.w.name+"'s permits after B's release", r2)
	if r2.T < cb.invoked() {
		t.Errorf("%s acquired before B's release began", second.w.name)
	}
	if st := e.inspect(semLock, name); st.Used != limit || len(st.Holders) != 2 {
		t.Errorf("D holds 2 permits and F 1, the store lists %s", describeHolders(st))
	}
	wantOK(t, "D's release", d.release(dc.res.Handle).must(t, patience))
	wantOK(t, "F's release", f.release(fc.res.Handle).must(t, patience))
	if st := e.inspect(semLock, name); st.Used != 0 || len(st.Holders) != 0 {
		t.Errorf("after every release, the store lists %s", describeHolders(st))
	}

	// A contended workload: holders of 1 and 2 permits, renewed and fixed
	// leases; one of them is killed while it holds, and replaced.
	slots := []*slot{{w: b}, {w: d}, {w: f}, {w: e.spawn(cfg("g"))}}
	spec := loopSpec{
		name: name, wait: 2 * time.Second,
		lease: func(i int) time.Duration {
			if i%2 == 0 {
				return 0
			}
			return lease
		},
		hold: func(i int) time.Duration { return time.Duration(20+i%3*20) * time.Millisecond },
		gap:  10 * time.Millisecond,
		kind: func(i int) lockSpec { return semPermits(1 + i%2) },
	}
	st := newLoopStats()
	killed := ""
	e.runLoops(slots, spec, st, 2500*time.Millisecond, func(ctx context.Context) {
		time.Sleep(700 * time.Millisecond)
		deadline := time.Now().Add(patience)
		for killed == "" && ctx.Err() == nil && time.Now().Before(deadline) {
			for _, s := range slots {
				w := s.get()
				w.mu.Lock()
				holding := false
				for _, h := range w.holds {
					holding = holding || (h.doneAt == 0 && len(h.releases) == 0)
				}
				w.mu.Unlock()
				if holding {
					w.kill()
					killed = w.name
					nw, err := e.trySpawn(cfg("h"))
					if err != nil {
						t.Errorf("respawn: %v", err)
						return
					}
					s.set(nw)
					break
				}
			}
			time.Sleep(2 * time.Millisecond)
		}
	})
	t.Logf("workload with %s killed while holding: %s", killed, st.summary())
	if killed == "" {
		t.Errorf("no worker held a permit to be killed during the workload")
	}
	e.checkKindHistory(limit)
}

// rwWriterKilledInQueue: a writer H holds; a fair queue R1 W1 R2 R3 W2 of
// readers and writers waits behind it, each in its own process. W1 is
// killed (-9) while it waits (holding: after it got the lock). R1 is
// admitted at H's release; R2 and R3 are admitted together, after W1's
// waiter TTL ran out (within the eviction bound) or after W1's lease; W2
// comes last, after both readers released. No writer overlaps anyone.
func rwWriterKilledInQueue(e *env, holding bool) {
	t := e.t
	const (
		ttl   = 900 * time.Millisecond
		lease = 800 * time.Millisecond
	)
	bound := fairqueue.Policy{WaiterTTL: ttl}.EvictionBound()
	cfg := func(name string) workerConfig {
		c := e.kindConfig(name, rwLock, 0)
		c.WaiterTTL, c.RenewLease = ttl, lease
		return c
	}
	h := e.spawn(cfg("h"))
	r1, w1, r2, r3, w2 := e.spawn(cfg("r1")), e.spawn(cfg("w1")), e.spawn(cfg("r2")), e.spawn(cfg("r3")), e.spawn(cfg("w2"))
	name := "rw"
	hr := h.lockAs(writeLock, name, 0, 30*time.Second).must(t, patience)
	wantOK(t, "H's write lock", hr)
	c1 := r1.lockAs(readLock, name, 30*time.Second, 10*time.Second)
	e.waitKindQueued(rwLock, name, 1)
	cw1 := w1.lockAs(writeLock, name, 30*time.Second, 0) // renewed: its lease is RenewLease
	e.waitKindQueued(rwLock, name, 2)
	c2 := r2.lockAs(readLock, name, 30*time.Second, 10*time.Second)
	e.waitKindQueued(rwLock, name, 3)
	c3 := r3.lockAs(readLock, name, 30*time.Second, 10*time.Second)
	e.waitKindQueued(rwLock, name, 4)
	cw2 := w2.lockAs(writeLock, name, 30*time.Second, 10*time.Second)
	e.waitKindQueued(rwLock, name, 5)
	time.Sleep(200 * time.Millisecond)

	if !holding {
		w1.kill() // dead in the queue, behind R1
	}
	rel := h.release(hr.Handle)
	wantOK(t, "H's release", rel.must(t, patience))
	x1 := c1.must(t, patience)
	wantOK(t, "R1's read lock", x1)
	admitR1 := x1.T - rel.invoked()
	rel1 := r1.release(x1.Handle)
	wantOK(t, "R1's release", rel1.must(t, patience))

	var (
		xw1       event
		w1Hold    holdRec
		tKill     int64
		remaining int64
	)
	if holding {
		xw1 = cw1.must(t, patience)
		wantOK(t, "W1's write lock", xw1)
		if xw1.T < rel1.invoked() {
			t.Errorf("W1 acquired the write lock %s before R1's release began", ms(rel1.invoked()-xw1.T))
		}
		time.Sleep(lease / 2) // a renewal or so
		w1Hold, _ = w1.hold(xw1.Handle)
		tKill = w1.kill()
		remaining = w1Hold.deadline - tKill
	}

	x2, x3 := c2.must(t, patience), c3.must(t, patience)
	wantOK(t, "R2's read lock", x2)
	wantOK(t, "R3's read lock", x3)
	firstR := min(x2.T, x3.T)
	if holding {
		t.Logf("W1 killed holding the write lock with %s of lease left: R2 and R3 acquired %s and %s after the kill (%s and %s past the lease)",
			ms(remaining), ms(x2.T-tKill), ms(x3.T-tKill), ms(x2.T-w1Hold.deadline), ms(x3.T-w1Hold.deadline))
		if firstR < w1Hold.deadline-int64(deadlineSlack) {
			t.Errorf("a reader acquired %s before the killed writer's lease deadline", ms(w1Hold.deadline-firstR))
		}
		if firstR-tKill > remaining+int64(margin) {
			t.Errorf("the readers behind the killed writer waited %s after the kill, beyond its remaining lease %s plus %v", ms(firstR-tKill), ms(remaining), margin)
		}
	} else {
		stall := firstR - rel1.invoked()
		t.Logf("W1 killed waiting (WaiterTTL %v, eviction bound %v): R1 admitted %s after H's release; R2 and R3 %s and %s after R1's release",
			ttl, bound, ms(admitR1), ms(stall), ms(max(x2.T, x3.T)-rel1.invoked()))
		if stall > int64(bound+margin) {
			t.Errorf("the dead writer stalled the readers behind it %s, beyond the bound %v plus %v", ms(stall), bound, margin)
		}
		if ev, ok := cw1.peek(); !ok || !has(ev.Kinds, kindExited) {
			t.Errorf("the killed writer's lock call ended with %+v, want the worker's exit", ev)
		}
	}
	if firstR < rel1.invoked() {
		t.Errorf("FIFO order broken: a reader behind W1 acquired %s before R1's release began", ms(rel1.invoked()-firstR))
	}
	// Both readers hold together; W2 waits for both.
	time.Sleep(100 * time.Millisecond)
	if ev, ok := cw2.peek(); ok {
		t.Errorf("W2 returned %v %v while R2 and R3 held read locks", ev.OK, ev.Kinds)
	}
	if st := e.inspect(rwLock, name); len(st.Holders) != 2 || st.Owner != "" {
		t.Errorf("R2 and R3 hold read locks, the store lists %s (write holder %q)", describeHolders(st), st.Owner)
	}
	rel2 := r2.release(x2.Handle)
	wantOK(t, "R2's release", rel2.must(t, patience))
	time.Sleep(50 * time.Millisecond)
	if ev, ok := cw2.peek(); ok {
		t.Errorf("W2 returned %v %v while R3 held a read lock", ev.OK, ev.Kinds)
	}
	rel3 := r3.release(x3.Handle)
	wantOK(t, "R3's release", rel3.must(t, patience))
	xw2 := cw2.must(t, patience)
	wantOK(t, "W2's write lock", xw2)
	if xw2.T < rel3.invoked() {
		t.Errorf("W2 acquired the write lock %s before R3's release began", ms(rel3.invoked()-xw2.T))
	}
	t.Logf("W2 acquired %s after the last reader's release", ms(xw2.T-rel3.invoked()))
	fences := []int64{hr.Fence, x1.Fence}
	if holding {
		fences = append(fences, xw1.Fence)
	}
	fences = append(fences, min(x2.Fence, x3.Fence), max(x2.Fence, x3.Fence), xw2.Fence)
	if !slices.IsSorted(fences) || len(slices.Compact(slices.Clone(fences))) != len(fences) {
		t.Errorf("fences do not rise in queue order: %v", fences)
	}
	wantOK(t, "W2's release", w2.release(xw2.Handle).must(t, patience))
	e.checkKindHistory(0)
}

// TestSharedModel checks that the model and the interval check of shared
// locks tell legal histories from illegal ones, without any process.
func TestSharedModel(t *testing.T) {
	op := func(client int, k opKind, hold int, write bool, permits int, out outcome, call, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Input: mInput{k, hold, fmt.Sprintf("#%d", hold), write, permits}, Call: call, Output: mOutput{out}, Return: ret}
	}
	hv := func(id int, write bool, permits int, acquired, relInv int64) holdView {
		return holdView{id: id, desc: fmt.Sprintf("#%d", id), acquired: acquired, deadline: 1 << 40, relInv: relInv, write: write, permits: permits, fence: int64(id)}
	}
	for _, c := range []struct {
		name  string
		limit int
		ops   []porcupine.Operation
		holds []holdView
		legal bool
	}{
		{"two readers together", 0, []porcupine.Operation{
			op(0, opAcquire, 1, false, 0, outOK, 0, 10), op(1, opAcquire, 2, false, 0, outOK, 5, 15),
			op(0, opRelease, 1, false, 0, outOK, 20, 30), op(1, opRelease, 2, false, 0, outOK, 20, 30),
		}, []holdView{hv(1, false, 0, 10, 20), hv(2, false, 0, 15, 20)}, true},
		{"a writer inside a read hold", 0, []porcupine.Operation{
			op(0, opAcquire, 1, false, 0, outOK, 0, 10), op(1, opAcquire, 2, true, 0, outOK, 12, 15),
			op(0, opRelease, 1, false, 0, outOK, 20, 30), op(1, opRelease, 2, true, 0, outOK, 20, 30),
		}, []holdView{hv(1, false, 0, 10, 20), hv(2, true, 0, 15, 20)}, false},
		{"a reader after an expired writer", 0, []porcupine.Operation{
			op(0, opAcquire, 1, true, 0, outOK, 0, 10), op(2, opExpire, 1, true, 0, outOK, 15, 1000),
			op(1, opAcquire, 2, false, 0, outOK, 20, 25), op(1, opRelease, 2, false, 0, outOK, 30, 40),
		}, []holdView{{id: 1, desc: "#1", acquired: 10, deadline: 15 + int64(deadlineSlack), write: true, fence: 1}, hv(2, false, 0, 25, 30)}, true},
		{"3 of 3 permits", 3, []porcupine.Operation{
			op(0, opAcquire, 1, false, 2, outOK, 0, 10), op(1, opAcquire, 2, false, 1, outOK, 5, 15),
			op(0, opRelease, 1, false, 2, outOK, 20, 30), op(1, opRelease, 2, false, 1, outOK, 20, 30),
		}, []holdView{hv(1, false, 2, 10, 20), hv(2, false, 1, 15, 20)}, true},
		{"4 of 3 permits", 3, []porcupine.Operation{
			op(0, opAcquire, 1, false, 2, outOK, 0, 10), op(1, opAcquire, 2, false, 2, outOK, 12, 15),
			op(0, opRelease, 1, false, 2, outOK, 20, 30), op(1, opRelease, 2, false, 2, outOK, 20, 30),
		}, []holdView{hv(1, false, 2, 10, 20), hv(2, false, 2, 15, 20)}, false},
		{"a killed holder's permits taken in doubt", 3, []porcupine.Operation{
			op(0, opAcquire, 1, false, 2, outUnknown, 0, 1000), op(2, opExpire, 1, false, 2, outOK, 0, 1000),
			op(1, opAcquire, 2, false, 2, outOK, 12, 15), op(1, opRelease, 2, false, 2, outOK, 20, 30),
		}, []holdView{hv(2, false, 2, 15, 20)}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			nm := sharedModel(c.limit)
			res := porcupine.CheckOperations(nm.ToModel(), c.ops)
			if res != c.legal {
				t.Errorf("porcupine says linearizable=%v, want %v", res, c.legal)
			}
			if bad := checkSharing(c.limit)(c.holds); (len(bad) == 0) != c.legal {
				t.Errorf("checkSharing found %q, want legal=%v", bad, c.legal)
			}
		})
	}
}
