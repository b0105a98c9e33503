package conformance

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/internal/token"
	"github.com/disgolock/disgo/locker"
	"github.com/disgolock/disgo/locker/driver"
)

// The RWLock group: read-write locks ([driver.RWLocker], locker.NewRW).

// rwReadersShare: readers of several processes hold the read lock of one
// key at once; a writer waits until the last of them released, and gets a
// fencing token greater than theirs.
func rwReadersShare(e *env) {
	const n, key = 4, "readers-share"
	var (
		cs []rwClient
		hs []*locker.Lock[string]
	)
	for i := range n {
		c := e.rwClient()
		l := e.rwLocker(c, locker.Options[string]{RenewLease: renewLease}).Read()
		cs = append(cs, c)
		switch i % 3 {
		case 0:
			hs = append(hs, e.tryLock(l, key, longLease))
		case 1:
			hs = append(hs, e.lock(l, key, time.Second, longLease))
		default:
			hs = append(hs, e.renewed(l, key, time.Second))
		}
	}
	wc := e.rwClient()
	wl := e.rwLocker(wc, locker.Options[string]{})
	name := hs[0].Name()
	var top int64
	owners := map[string]bool{}
	for i, h := range hs {
		require.NoError(e.t, h.Err(), "reader %d while the others hold the read lock too", i)
		require.False(e.t, owners[h.Owner()], "two readers share an owner token")
		owners[h.Owner()] = true
		top = max(top, h.Fence())
	}
	for _, view := range []driver.Backend{cs[0].read, cs[0].write} {
		if st, ok := e.viewState(view, name); ok {
			require.Empty(e.t, st.Owner, "inspected write holder of a lock only readers hold")
			require.Len(e.t, st.Holders, n, "inspected holdings of %d readers", n)
			for _, h := range hs {
				got, ok := holdingOf(st, h.Owner(), false)
				require.True(e.t, ok, "the inspected holdings %+v miss reader %q", st.Holders, h.Owner())
				require.Equal(e.t, 1, got.Count, "inspected hold count of a reader")
				require.Equal(e.t, h.Fence(), got.Fence, "inspected fencing token of a reader")
				require.Positive(e.t, got.TTL, "inspected lease of a reader")
			}
		}
	}
	e.taken(wl.Write(), key, "readers hold it")
	w := acquiring(func() (*locker.Lock[string], error) {
		return wl.Write().Lock(e.ctx, key, locker.WaitForever, longLease)
	})
	e.awaitQueued(wc.Client, wc.write, name, 1)
	for i, h := range hs {
		e.release(h)
		if i < n-1 {
			time.Sleep(20 * time.Millisecond) // room for a wrongly admitted writer to show
			require.False(e.t, arrived(w), "a writer acquired while %d readers still held the read lock", n-1-i)
		}
	}
	r := await(e.t, patience, "the writer to acquire once every reader released", w)
	require.NoError(e.t, r.err)
	require.Greater(e.t, r.lock.Fence(), top, "a write lock's token must exceed that of every earlier holding")
	if st, ok := e.viewState(wc.write, name); ok {
		require.Equal(e.t, r.lock.Owner(), st.Owner, "inspected write holder")
		require.Equal(e.t, 1, st.Count, "inspected write hold count")
		require.Equal(e.t, r.lock.Fence(), st.Fence, "inspected write fencing token")
	}
	e.release(r.lock)
}

// rwHammer: several clients × goroutines × rounds take read and write
// locks of one key with every acquiring call; no reader is ever inside
// with a writer, no two writers at once, every token is issued once, a
// write lock's token exceeds that of every holding seen before it, and a
// read lock's that of every holding seen before its call began.
func rwHammer(e *env) {
	const clients, workers, rounds = 3, 3, 10
	const key = "rw-hammer"
	h := &rwInside{}
	done := make(chan error, clients*workers)
	for range clients {
		l := e.rwLocker(e.rwClient(), locker.Options[string]{RenewLease: 2 * time.Second})
		for w := range workers {
			go func() { done <- h.worker(e.ctx, l, key, w, rounds) }()
		}
	}
	for i := range clients * workers {
		err := await(e.t, time.Minute, fmt.Sprintf("read-write hammer worker %d of %d to finish", i+1, clients*workers), done)
		require.NoError(e.t, err)
	}
	require.Positive(e.t, h.reads.Load(), "no read lock was taken")
	require.Positive(e.t, h.writes.Load(), "no write lock was taken")
}

// rwInside is what a read-write hammer sees inside the lock.
type rwInside struct {
	readers, writers atomic.Int32
	reads, writes    atomic.Int32
	fences           fenceLog
}

func (in *rwInside) worker(ctx context.Context, rw *locker.RWLocker[string], key string, w, rounds int) error {
	for r := range rounds {
		write := (w+r)%3 == 0
		l, side := rw.Read(), "read"
		if write {
			l, side = rw.Write(), "write"
		}
		in.fences.mu.Lock()
		floor := in.fences.max
		in.fences.mu.Unlock()
		var (
			h   *locker.Lock[string]
			err error
		)
		switch (w + r) % 3 {
		case 0:
			h, err = l.Lock(ctx, key, locker.WaitForever, longLease)
		case 1:
			h, err = l.LockWithRenewal(ctx, key, locker.WaitForever)
		default:
			h, err = l.Lock(ctx, key, time.Minute, longLease)
		}
		if err != nil {
			return fmt.Errorf("round %d: acquire the %s lock: %w", r, side, err)
		}
		if write {
			if n := in.writers.Add(1); n != 1 {
				return fmt.Errorf("round %d: %d writers of %q at once", r, n, key)
			}
			if n := in.readers.Load(); n != 0 {
				return fmt.Errorf("round %d: a writer of %q inside with %d readers", r, key, n)
			}
			prev, dup := in.fences.add(h.Fence())
			if dup || h.Fence() <= prev {
				return fmt.Errorf("round %d: write lock token %d, not greater than %d of a holding seen before", r, h.Fence(), prev)
			}
			in.writes.Add(1)
		} else {
			in.readers.Add(1)
			if n := in.writers.Load(); n != 0 {
				return fmt.Errorf("round %d: a reader of %q inside with a writer", r, key)
			}
			if _, dup := in.fences.add(h.Fence()); dup {
				return fmt.Errorf("round %d: read lock token %d issued twice", r, h.Fence())
			}
			if h.Fence() <= floor {
				return fmt.Errorf("round %d: read lock token %d, not greater than %d of a holding seen before the call", r, h.Fence(), floor)
			}
			in.reads.Add(1)
		}
		time.Sleep(100 * time.Microsecond)
		if write {
			in.writers.Add(-1)
		} else {
			in.readers.Add(-1)
		}
		if err := h.Err(); err != nil {
			return fmt.Errorf("round %d: the held %s lock reports %w", r, side, err)
		}
		if err := h.Release(ctx); err != nil {
			return fmt.Errorf("round %d: release the %s lock: %w", r, side, err)
		}
	}
	return nil
}

// rwReentrant returns the subtest of the reentrancy of one side: an owner
// takes it three times, from two clients and through every call, at once
// although a waiter of the other side is queued; the re-entries keep the
// token; the waiter gets the lock only after the last release.
func rwReentrant(write bool) func(e *env) {
	return func(e *env) {
		a, b, c := e.rwClient(), e.rwClient(), e.rwClient()
		la, lb := e.rwLocker(a, locker.Options[string]{RenewLease: renewLease}), e.rwLocker(b, locker.Options[string]{})
		lc := e.rwLocker(c, locker.Options[string]{})
		side, sideB, other, view, what := la.Read(), lb.Read(), lc.Write(), a.read, "read"
		waitView := c.write
		if write {
			side, sideB, other, view, what = la.Write(), lb.Write(), lc.Read(), a.write, "write"
			waitView = c.read
		}
		key := "reentrant-" + what
		h1 := e.tryLock(side, key, longLease)
		name := h1.Name()
		waiter := acquiring(func() (*locker.Lock[string], error) {
			return other.Lock(e.ctx, key, locker.WaitForever, longLease)
		})
		e.awaitQueued(c.Client, waitView, name, 1)
		own := locker.WithOwner(h1.Owner())
		h2 := e.tryLock(side, key, longLease, own) // at once, whatever waits
		h3 := e.renewed(sideB, key, 0, own)
		for i, h := range []*locker.Lock[string]{h2, h3} {
			require.Equal(e.t, h1.Owner(), h.Owner(), "owner of %s re-entry %d", what, i+1)
			require.Equal(e.t, h1.Fence(), h.Fence(), "a %s re-entry keeps the fencing token", what)
		}
		if st, ok := e.viewState(view, name); ok {
			got, ok := holdingOf(st, h1.Owner(), write)
			require.True(e.t, ok, "the inspected holdings %+v miss the %s holder", st.Holders, what)
			require.Equal(e.t, 3, got.Count, "inspected hold count of a %s lock taken three times", what)
			require.Len(e.t, st.Holders, 1, "inspected holdings")
		}
		for i, h := range []*locker.Lock[string]{h2, h1} { // not in acquisition order, on purpose
			e.release(h)
			time.Sleep(20 * time.Millisecond) // room for a wrongly admitted waiter to show
			require.False(e.t, arrived(waiter), "a waiter acquired while the %s lock was still held %d times", what, 2-i)
		}
		e.release(h3)
		r := await(e.t, patience, fmt.Sprintf("the waiter to acquire after the last of three %s releases", what), waiter)
		require.NoError(e.t, r.err)
		require.Greater(e.t, r.lock.Fence(), h1.Fence(), "a fresh holding gets a greater fencing token")
		for _, h := range []*locker.Lock[string]{h1, h2, h3} {
			awaitClosed(e.t, patience, "Done of a released handle to close", h.Done())
			require.ErrorIs(e.t, h.Err(), locker.ErrReleased)
		}
		e.release(r.lock)
	}
}

// rwWriteHolderTakesRead: the write holder takes the read lock of its key
// at once, although a reader of another owner waits, and with a fresh
// token; it re-enters the write lock while holding both (no upgrade);
// other owners stay out until it releases the write lock, which leaves it
// a reader sharing the lock with the waiting reader.
func rwWriteHolderTakesRead(e *env) {
	a, b, c := e.rwClient(), e.rwClient(), e.rwClient()
	la, lb, lc := e.rwLocker(a, locker.Options[string]{}), e.rwLocker(b, locker.Options[string]{}), e.rwLocker(c, locker.Options[string]{})
	const key = "write-then-read"
	hw := e.tryLock(la.Write(), key, longLease)
	name := hw.Name()
	w := acquiring(func() (*locker.Lock[string], error) { return lb.Read().Lock(e.ctx, key, locker.WaitForever, longLease) })
	e.awaitQueued(b.Client, b.read, name, 1)
	own := locker.WithOwner(hw.Owner())
	hr := e.tryLock(la.Read(), key, longLease, own)
	require.Equal(e.t, hw.Owner(), hr.Owner())
	require.Greater(e.t, hr.Fence(), hw.Fence(), "the write holder's read lock is a fresh holding, with a greater token")
	hw2 := e.lock(la.Write(), key, 0, longLease, own)
	require.Equal(e.t, hw.Fence(), hw2.Fence(), "a write re-entry by a holder of both locks keeps the token")
	if st, ok := e.viewState(a.read, name); ok {
		require.Equal(e.t, hw.Owner(), st.Owner, "inspected write holder")
		require.Equal(e.t, 2, st.Count, "inspected write hold count")
		require.Equal(e.t, hw.Fence(), st.Fence, "inspected fencing token of the write holding")
		require.Len(e.t, st.Holders, 2, "inspected holdings of one owner holding both locks")
		gw, okw := holdingOf(st, hw.Owner(), true)
		gr, okr := holdingOf(st, hw.Owner(), false)
		require.True(e.t, okw && okr, "the inspected holdings %+v miss the write or the read holding", st.Holders)
		require.Equal(e.t, 2, gw.Count)
		require.Equal(e.t, 1, gr.Count)
		require.Equal(e.t, hr.Fence(), gr.Fence)
	}
	e.taken(lc.Read(), key, "another owner holds the write lock")
	e.taken(lc.Write(), key, "another owner holds the write lock")
	e.release(hw2)
	time.Sleep(20 * time.Millisecond) // room for a wrongly admitted reader to show
	require.False(e.t, arrived(w), "a reader acquired while another owner still held the write lock once")
	e.release(hw)
	r := await(e.t, patience, "the waiting reader to share the lock once the write lock was released", w)
	require.NoError(e.t, r.err)
	require.NoError(e.t, hr.Err(), "the read lock of the former writer")
	e.release(hr)
	e.release(r.lock)
}

// rwDowngrade: releasing the write lock while holding the read lock leaves
// the owner a reader: its read lock lives on, other readers join at once,
// writers stay out, and the owner, now only a reader, cannot take the
// write lock back (ErrUpgrade).
func rwDowngrade(e *env) {
	a, b := e.rwClient(), e.rwClient()
	la, lb := e.rwLocker(a, locker.Options[string]{RenewLease: renewLease}), e.rwLocker(b, locker.Options[string]{})
	const key = "downgrade"
	hw := e.renewed(la.Write(), key, 0)
	name := hw.Name()
	own := locker.WithOwner(hw.Owner())
	hr := e.renewed(la.Read(), key, 0, own)
	e.taken(lb.Read(), key, "another owner holds the write lock")
	e.release(hw)
	require.NoError(e.t, hr.Err(), "the read lock after its owner released the write lock")
	if st, ok := e.viewState(a.write, name); ok {
		require.Empty(e.t, st.Owner, "inspected write holder after the downgrade")
		require.Len(e.t, st.Holders, 1, "inspected holdings after the downgrade")
		got, ok := holdingOf(st, hw.Owner(), false)
		require.True(e.t, ok, "the inspected holdings %+v miss the downgraded reader", st.Holders)
		require.Equal(e.t, hr.Fence(), got.Fence)
	}
	h2 := e.tryLock(lb.Read(), key, longLease)
	e.taken(lb.Write(), key, "readers hold it")
	e.rejected("the downgraded owner's TryLock of the write lock", locker.ErrUpgrade, func() (*locker.Lock[string], error) {
		return la.Write().TryLock(e.ctx, key, longLease, own)
	})
	e.release(h2)
	require.NoError(e.t, hr.Err(), "the downgraded read lock, renewed")
	e.release(hr)
	e.release(e.tryLock(lb.Write(), key, longLease))
}

// rwNoUpgrade: an owner that holds a read lock and asks for the write lock
// fails at once with ErrUpgrade, through every acquiring call and the
// driver's Acquire and AcquireFair, and nothing changes: its read lock
// lives on, nothing is queued, other readers still join. Once it released
// the read lock it takes the write lock.
func rwNoUpgrade(e *env) {
	a, b := e.rwClient(), e.rwClient()
	la, lb := e.rwLocker(a, locker.Options[string]{RenewLease: renewLease}), e.rwLocker(b, locker.Options[string]{})
	const key = "no-upgrade"
	hr := e.renewed(la.Read(), key, 0)
	name := hr.Name()
	own := locker.WithOwner(hr.Owner())
	hb := e.tryLock(lb.Read(), key, longLease)
	before, inspectable := e.viewState(a.read, name)
	w := la.Write()
	for _, c := range []struct {
		what string
		call func() (*locker.Lock[string], error)
	}{
		{"TryLock", func() (*locker.Lock[string], error) { return w.TryLock(e.ctx, key, longLease, own) }},
		{"Lock(wait 1s)", func() (*locker.Lock[string], error) { return w.Lock(e.ctx, key, time.Second, longLease, own) }},
		{"Lock(WaitForever)", func() (*locker.Lock[string], error) { return w.Lock(e.ctx, key, locker.WaitForever, longLease, own) }},
		{"LockWithRenewal(WaitForever)", func() (*locker.Lock[string], error) { return w.LockWithRenewal(e.ctx, key, locker.WaitForever, own) }},
		{"LockWithRenewal(WaitForever) from the other client", func() (*locker.Lock[string], error) {
			return lb.Write().LockWithRenewal(e.ctx, key, locker.WaitForever, locker.WithOwner(hb.Owner()))
		}},
	} {
		e.rejected("a reader's "+c.what+" of the write lock", locker.ErrUpgrade, c.call)
	}
	req := driver.AcquireRequest{Name: name, Owner: hr.Owner(), Ticket: token.New(), Lease: longLease}
	res, err := e.driverAcquire(a.write, req)
	require.ErrorIs(e.t, err, driver.ErrUpgrade, "the write view's Acquire by a reader")
	require.False(e.t, res.Acquired)
	if q, ok := a.write.(driver.Queue); ok {
		req.Ticket = token.New()
		type reply struct {
			res driver.AcquireResult
			err error
		}
		r := within(e.t, patience, "Queue.AcquireFair", func() reply {
			res, err := q.AcquireFair(e.ctx, req, time.Minute)
			return reply{res, err}
		})
		require.ErrorIs(e.t, r.err, driver.ErrUpgrade, "the write view's AcquireFair by a reader")
		require.False(e.t, r.res.Acquired)
	}
	if inspectable {
		after := e.state(a.read.(driver.Inspector), name)
		require.Zero(e.t, after.Waiters, "a refused upgrade left a waiter queued")
		require.Empty(e.t, after.Owner, "a refused upgrade made a write holder")
		require.Len(e.t, after.Holders, len(before.Holders), "a refused upgrade changed the holdings")
		for _, h := range before.Holders {
			got, ok := holdingOf(after, h.Owner, h.Write)
			require.True(e.t, ok, "a refused upgrade ended a holding")
			require.Equal(e.t, h.Count, got.Count, "a refused upgrade changed a hold count")
			require.Equal(e.t, h.Fence, got.Fence, "a refused upgrade changed a token")
		}
	}
	require.NoError(e.t, hr.Err(), "the read lock of the owner refused an upgrade")
	e.release(e.tryLock(lb.Read(), key, longLease)) // readers still join
	e.taken(lb.Write(), key, "readers hold it")
	e.release(hb)
	e.release(hr)
	hw := e.tryLock(la.Write(), key, longLease, own)
	require.Greater(e.t, hw.Fence(), hr.Fence())
	e.release(hw)
}

// rwFairOrder: in fair mode readers and writers queue in one FIFO: a
// waiting writer blocks the readers who come after it (even though only
// readers hold the lock), and the readers at the head of the queue are
// admitted together, up to the next writer; tokens grow along the queue.
func rwFairOrder(e *env) {
	hc := e.rwClient()
	e.needFair(hc.Client)
	hl := e.rwLocker(hc, locker.Options[string]{})
	const key = "rw-fifo"
	r0 := e.tryLock(hl.Read(), key, longLease)
	name := r0.Name()
	type waiter struct {
		write bool
		ch    <-chan acq
	}
	queue := []bool{true, false, false, true, false} // W1 R2 R3 W2 R4
	var ws []waiter
	for i, write := range queue {
		c := e.rwClient()
		l := e.rwLocker(c, locker.Options[string]{})
		side, view := l.Read(), c.read
		if write {
			side, view = l.Write(), c.write
		}
		ws = append(ws, waiter{write, acquiring(func() (*locker.Lock[string], error) {
			return side.Lock(e.ctx, key, locker.WaitForever, longLease)
		})})
		e.awaitQueued(c.Client, view, name, i+1)
		if i == 0 {
			e.taken(e.rwLocker(e.rwClient(), locker.Options[string]{}).Read(), key, "a writer waits ahead of the newcomer")
		}
	}
	quiet := func(what string, idx ...int) {
		e.t.Helper()
		time.Sleep(50 * time.Millisecond) // room for a wrongly admitted waiter to show
		for _, i := range idx {
			require.False(e.t, arrived(ws[i].ch), "waiter %d acquired %s", i, what)
		}
	}
	got := func(i int, floor int64) *locker.Lock[string] {
		e.t.Helper()
		r := await(e.t, patience, fmt.Sprintf("waiter %d to acquire", i), ws[i].ch)
		require.NoError(e.t, r.err, "waiter %d", i)
		require.Greater(e.t, r.lock.Fence(), floor, "token of waiter %d", i)
		return r.lock
	}
	quiet("while the first reader held the lock", 0, 1, 2, 3, 4)
	e.release(r0)
	w1 := got(0, r0.Fence())
	quiet("while the first writer held the lock", 1, 2, 3, 4)
	e.checkWaitersOn(hc.read, name, 4)
	e.release(w1)
	r2, r3 := got(1, w1.Fence()), got(2, w1.Fence()) // together: neither released yet
	quiet("while readers ahead of it hold the lock and a writer waits ahead of it", 3, 4)
	if st, ok := e.viewState(hc.read, name); ok {
		require.Len(e.t, st.Holders, 2, "inspected holdings of the two readers admitted together")
		require.Equal(e.t, 2, st.Waiters, "inspected waiters behind them")
	}
	e.release(r2)
	quiet("while a reader still held the lock", 3, 4)
	e.release(r3)
	w2 := got(3, max(r2.Fence(), r3.Fence()))
	quiet("while the writer ahead of it held the lock", 4)
	e.release(w2)
	r4 := got(4, w2.Fence())
	e.release(r4)
	e.checkWaitersOn(hc.read, name, 0)
}

// rwWriterNotStarved: in fair mode a writer gets the lock although readers
// of several processes keep it held without a pause, and no reader whose
// call began after the writer was queued gets in before the writer.
func rwWriterNotStarved(e *env) {
	wc := e.rwClient()
	e.needFair(wc.Client)
	wl := e.rwLocker(wc, locker.Options[string]{})
	const key, readers = "writer-not-starved", 3
	name := e.name(wl.Read(), key)
	var queued, held atomic.Bool
	stop := make(chan struct{})
	halt := sync.OnceFunc(func() { close(stop) })
	defer halt()
	var loops []<-chan error
	for i := range readers {
		l := e.rwLocker(e.rwClient(), locker.Options[string]{}).Read()
		loops = append(loops, loopUntil(stop, func() error {
			after := queued.Load()
			h, err := l.Lock(e.ctx, key, locker.WaitForever, longLease)
			if err != nil {
				return fmt.Errorf("reader %d: %w", i, err)
			}
			if after && !held.Load() {
				_ = h.Release(e.ctx)
				return fmt.Errorf("reader %d, whose call began after the writer was queued, acquired before the writer", i)
			}
			time.Sleep(time.Duration(5+5*i) * time.Millisecond)
			return h.Release(e.ctx)
		}))
	}
	st, inspectable := wc.read.(driver.Inspector)
	if inspectable {
		eventually(e.t, patience, "readers to share the lock", func() (bool, error) {
			s, err := st.Inspect(e.ctx, name)
			return len(s.Holders) >= 2, err
		})
	} else {
		time.Sleep(stagger)
	}
	owner := locker.NewOwner()
	called := make(chan struct{})
	w := acquiring(func() (*locker.Lock[string], error) {
		defer close(called)
		return wl.Write().Lock(e.ctx, key, locker.WaitForever, longLease, locker.WithOwner(owner))
	})
	if inspectable && e.queuedOrDone(st, name, owner, called) {
		queued.Store(true)
	}
	r := await(e.t, patience, "the writer to acquire under a stream of readers", w)
	held.Store(true)
	require.NoError(e.t, r.err)
	e.release(r.lock)
	halt()
	for i, l := range loops {
		require.NoError(e.t, await(e.t, patience, fmt.Sprintf("reader %d to stop", i), l))
	}
}

// rwWaiterLeaves: in fair mode, when a writer that blocks the readers
// queued behind it gives up, those readers join the readers holding the
// lock at once, without a re-check of their own.
func rwWaiterLeaves(e *env) {
	hc, wc := e.rwClient(), e.rwClient()
	e.needFair(hc.Client)
	o, quiet := e.quietOptions(locker.Options[string]{})
	hl, wl := e.rwLocker(hc, o), e.rwLocker(wc, o)
	const key = "rw-writer-leaves"
	r0 := e.tryLock(hl.Read(), key, longLease)
	name := r0.Name()
	wctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	w := acquiring(func() (*locker.Lock[string], error) { return wl.Write().Lock(wctx, key, locker.WaitForever, longLease) })
	e.awaitQueued(wc.Client, wc.write, name, 1)
	var rs []<-chan acq
	for i := range 2 {
		c := e.rwClient()
		l := e.rwLocker(c, o).Read()
		rs = append(rs, acquiring(func() (*locker.Lock[string], error) {
			return l.Lock(e.ctx, key, quiet+patience, longLease)
		}))
		e.awaitQueued(c.Client, c.read, name, i+2)
	}
	time.Sleep(20 * time.Millisecond)
	for i, r := range rs {
		require.False(e.t, arrived(r), "reader %d acquired past the writer queued ahead of it", i)
	}
	cancel()
	requireCtxErr(e.t, await(e.t, patience, "the writer that gave up to return", w).err, context.Canceled)
	for i, r := range rs {
		got := await(e.t, quiet/2, fmt.Sprintf("reader %d to be admitted once the writer ahead of it left (it would re-check on its own only after %v)", i, quiet), r)
		require.NoError(e.t, got.err)
		defer e.release(got.lock)
	}
	require.NoError(e.t, r0.Err())
	e.release(r0)
}

// rwDeadReaderExpires: the renewed read lock of a reader whose process
// died ends with its lease, and a waiting writer gets the lock once the
// live readers released, with a greater token.
func rwDeadReaderExpires(e *env) {
	a, b, c := e.rwClient(), e.rwClient(), e.rwClient()
	e.needKill(a.Client)
	la := e.rwLocker(a, locker.Options[string]{RenewLease: renewLease})
	lb, lc := e.rwLocker(b, locker.Options[string]{}), e.rwLocker(c, locker.Options[string]{})
	const key = "dead-reader"
	ha := e.renewed(la.Read(), key, 0)
	hb := e.tryLock(lb.Read(), key, longLease)
	name := ha.Name()
	w := acquiring(func() (*locker.Lock[string], error) {
		return lc.Write().Lock(e.ctx, key, locker.WaitForever, longLease)
	})
	e.awaitQueued(c.Client, c.write, name, 1)
	a.Kill()
	e.release(hb)
	r := await(e.t, renewLease+patience,
		fmt.Sprintf("the writer to acquire once the read lease (RenewLease %v) of a killed reader ran out", renewLease), w)
	require.NoError(e.t, r.err)
	require.Greater(e.t, r.lock.Fence(), max(ha.Fence(), hb.Fence()))
	if st, ok := e.viewState(c.read, name); ok {
		require.Len(e.t, st.Holders, 1, "inspected holdings once the dead reader's lease ran out")
	}
	e.release(r.lock)
}

// rwFencing: read and write holdings draw tokens from one counter per key:
// every fresh holding's token exceeds every earlier one, concurrent
// readers' too; a re-entry keeps it; a read lock's exceeds that of a write
// lock released or expired before it; a "not acquired" answer of either
// view reports the newest token.
func rwFencing(e *env) {
	a, b := e.rwClient(), e.rwClient()
	la, lb := e.rwLocker(a, locker.Options[string]{}), e.rwLocker(b, locker.Options[string]{})
	const key = "rw-fence"
	var last int64
	fresh := func(h *locker.Lock[string], what string) {
		e.t.Helper()
		require.Greater(e.t, h.Fence(), last, "token of %s", what)
		last = h.Fence()
	}
	refused := func(view driver.Backend, name, what string) {
		e.t.Helper()
		res, err := e.driverAcquire(view, driver.AcquireRequest{Name: name, Owner: locker.NewOwner(), Ticket: token.New(), Lease: longLease})
		require.NoError(e.t, err, "%s Acquire", what)
		require.False(e.t, res.Acquired, "%s Acquire", what)
		require.GreaterOrEqual(e.t, res.Fence, last, "the \"not acquired\" Fence of %s must not be lower than the newest token", what)
	}
	r1 := e.tryLock(la.Read(), key, longLease)
	name := r1.Name()
	fresh(r1, "the first read lock")
	r2 := e.lock(lb.Read(), key, time.Second, longLease)
	fresh(r2, "a read lock taken while another reader holds")
	r1b := e.tryLock(lb.Read(), key, longLease, locker.WithOwner(r1.Owner()))
	require.Equal(e.t, r1.Fence(), r1b.Fence(), "a read re-entry keeps the token")
	refused(a.write, name, "the write view's")
	for _, h := range []*locker.Lock[string]{r1, r2, r1b} {
		e.release(h)
	}
	w1 := e.renewed(lb.Write(), key, 0)
	fresh(w1, "a write lock after readers")
	refused(a.read, name, "the read view's")
	refused(a.write, name, "the write view's")
	r3 := e.tryLock(lb.Read(), key, longLease, locker.WithOwner(w1.Owner()))
	fresh(r3, "the write holder's read lock")
	e.release(w1)
	r4 := e.tryLock(la.Read(), key, longLease)
	fresh(r4, "a read lock after the write lock was released")
	e.release(r3)
	e.release(r4)
	w2 := e.lock(la.Write(), key, time.Second, shortLease)
	fresh(w2, "a write lock after readers")
	r5 := e.lock(lb.Read(), key, patience, longLease) // once w2's lease ran out
	fresh(r5, "a read lock after a write lock expired")
	e.release(r5)
}

// rwForceRelease: a force release through either side ends every holding
// of the key, read and write: the renewed readers of other processes learn
// it at their next renewal (ErrRevoked), a fixed-lease reader's Extend
// says revoked, the waiting writer gets the lock with a greater token; a
// force release through the Locker that holds a lock, on the other side,
// ends its handle at once. On a free key it fails with ErrNotHeld.
func rwForceRelease(e *env) {
	a, b, w, op := e.rwClient(), e.rwClient(), e.rwClient(), e.rwClient()
	e.needViewForceRelease(op.write)
	e.needViewForceRelease(op.read)
	o := locker.Options[string]{RenewLease: renewLease}
	la, lb, lw, lop := e.rwLocker(a, o), e.rwLocker(b, o), e.rwLocker(w, o), e.rwLocker(op, o)
	const key = "rw-forced"
	require.ErrorIs(e.t, e.forceRelease(lop.Read(), key), locker.ErrNotHeld, "ForceRelease of a free read-write lock")
	ha := e.renewed(la.Read(), key, 0)
	hb := e.renewed(lb.Read(), key, 0)
	hb2 := e.tryLock(lb.Read(), key, longLease, locker.WithOwner(hb.Owner()))
	hf := e.tryLock(la.Read(), key, longLease)
	name := ha.Name()
	waiter := acquiring(func() (*locker.Lock[string], error) {
		return lw.Write().Lock(e.ctx, key, locker.WaitForever, longLease)
	})
	e.awaitQueued(w.Client, w.write, name, 1)

	require.NoError(e.t, e.forceRelease(lop.Write(), key), "ForceRelease through the write side of a lock readers hold")
	r := await(e.t, patience, "the waiting writer to get the force-released lock", waiter)
	require.NoError(e.t, r.err)
	require.Greater(e.t, r.lock.Fence(), max(ha.Fence(), hb.Fence(), hf.Fence()), "the next holder's token")
	for _, h := range []*locker.Lock[string]{ha, hb, hb2} {
		awaitClosed(e.t, renewLease+patience, "a renewed reader to learn of the force release at its next renewal", h.Done())
		require.ErrorIs(e.t, h.Err(), locker.ErrLost)
		require.ErrorIs(e.t, h.Err(), locker.ErrRevoked, "the loss names its cause")
	}
	err := within(e.t, patience, "Extend of a force-released read lock", func() error { return hf.Extend(e.ctx, longLease) })
	require.ErrorIs(e.t, err, locker.ErrNotHeld)
	require.ErrorIs(e.t, err, locker.ErrRevoked, "the Extend names the force release")
	requireErr(e.t, e.releaseErr(ha), locker.ErrNotHeld)

	// Through the holder's own RWLocker, on the read side: its write lock ends at once.
	require.NoError(e.t, e.forceRelease(lw.Read(), key), "ForceRelease through the read side of a write-locked key")
	select {
	case <-r.lock.Done():
	default:
		e.t.Fatal("the write lock of the RWLocker that force-released its key through its read side is still live")
	}
	require.ErrorIs(e.t, r.lock.Err(), locker.ErrRevoked)
	if st, ok := e.viewState(op.read, name); ok {
		require.Empty(e.t, st.Holders, "inspected holdings after a force release")
		require.Empty(e.t, st.Owner)
	}
	e.release(e.tryLock(la.Write(), key, longLease))
}

// rwTicketScoped (driver contract): on each view, a repeated attempt with
// the same ticket does not count the hold twice, a release scoped to a
// stale ticket changes nothing; the read and write holds of one owner are
// two holdings, released and extended apart.
func rwTicketScoped(e *env) {
	c := e.rwClient()
	l := e.rwLocker(c, locker.Options[string]{})
	name, owner := e.name(l.Read(), "rw-ticket-scoped"), locker.NewOwner()
	for _, v := range []struct {
		what string
		view driver.Backend
	}{{"write", c.write}, {"read", c.read}} { // write first: the owner then holds both
		first, second := token.New(), token.New()
		acquire := func(ticket string) driver.AcquireResult {
			e.t.Helper()
			res, err := e.driverAcquire(v.view, driver.AcquireRequest{Name: name, Owner: owner, Ticket: ticket, Lease: longLease})
			require.NoError(e.t, err, "%s view Acquire", v.what)
			require.True(e.t, res.Acquired, "%s view Acquire by its holder", v.what)
			return res
		}
		require.Equal(e.t, 1, acquire(first).Count, "%s view", v.what)
		require.Equal(e.t, 2, acquire(second).Count, "%s view: a re-entry with a new ticket", v.what)
		require.Equal(e.t, 2, acquire(second).Count, "%s view: an attempt repeated with the same ticket counted the hold twice", v.what)
		for _, stale := range []string{first, token.New()} {
			held, _ := e.driverRelease(v.view, name, owner, stale)
			require.False(e.t, held, "%s view: a release scoped to a ticket that is not the owner's latest acquisition reported held", v.what)
		}
		held, n := e.driverRelease(v.view, name, owner, second)
		require.True(e.t, held, "%s view: a release scoped to the latest acquisition's ticket", v.what)
		require.Equal(e.t, 1, n, "%s view: hold count left", v.what)
	}
	// The owner holds each once. Releasing the write hold leaves the read hold.
	held, n := e.driverRelease(c.write, name, owner, "")
	require.True(e.t, held)
	require.Zero(e.t, n, "the write hold count left")
	held, _ = e.driverRelease(c.write, name, owner, "")
	require.False(e.t, held, "a second release of the write hold of an owner that holds only the read hold")
	ok, err := e.driverExtend(c.write, name, owner, longLease)
	require.NoError(e.t, err)
	require.False(e.t, ok, "the write view's Extend of an owner that holds only the read hold")
	ok, err = e.driverExtend(c.read, name, owner, longLease)
	require.NoError(e.t, err)
	require.True(e.t, ok, "the read view's Extend of the owner's read hold")
	held, n = e.driverRelease(c.read, name, owner, "")
	require.True(e.t, held)
	require.Zero(e.t, n)
	if st, ok := e.viewState(c.read, name); ok {
		require.Empty(e.t, st.Holders, "inspected holdings once everything was released")
	}
	e.release(e.tryLock(l.Write(), "rw-ticket-scoped", longLease)) // free
}

// kindsApart returns the subtest of the independence of the lock kinds of
// one key: the mutex, the read-write lock and the semaphore of a key are
// three locks, and holding one takes none of the others. It needs the
// kind of its group (a semaphore, or a read-write lock), and checks the
// other kind too when the backend has it.
func kindsApart(sem bool) func(e *env) {
	return func(e *env) {
		c, d := e.client(), e.client()
		if sem {
			e.semViews(c)
		} else {
			e.rwViews(c)
		}
		kindsApartOn(e, c, d)
	}
}

func kindsApartOn(e *env, c, d Client) {
	ml, md := e.locker(c, locker.Options[string]{}), e.locker(d, locker.Options[string]{})
	const key = "kinds-apart"
	hm := e.tryLock(ml, key, longLease)
	var held []*locker.Lock[string]
	_, isRW := c.Backend.(driver.RWLocker)
	_, isSem := c.Backend.(driver.Semaphorer)
	if isRW {
		rw := e.rwLocker(e.rwViews(c), locker.Options[string]{})
		rwd := e.rwLocker(e.rwViews(d), locker.Options[string]{})
		held = append(held, e.tryLock(rw.Write(), key, longLease))
		e.taken(rwd.Read(), key, "another owner holds the write lock")
	}
	if isSem {
		s := e.semLocker(e.semViews(c), 1, locker.Options[string]{})
		sd := e.semLocker(e.semViews(d), 1, locker.Options[string]{})
		held = append(held, e.tryLock(s, key, longLease))
		e.taken(sd, key, "its one permit is held")
	}
	e.taken(md, key, "the mutex is held")
	for _, h := range held {
		e.release(h)
	}
	e.taken(md, key, "the mutex is still held")
	e.release(hm)
}

// rwBadInput: NewRW rejects a nil backend and bad options, and a backend
// without read-write locks is ErrUnsupported; WithPermits on either side
// is an ArgumentError, and no bad call writes to the store.
func rwBadInput(e *env) {
	c := e.client()
	l, err := locker.NewRW[string](nil, locker.Options[string]{Mode: locker.Barging})
	require.Nil(e.t, l)
	requireArgumentError(e.t, err)
	l, err = locker.NewRW(struct{ driver.Backend }{c.Backend}, locker.Options[string]{Mode: locker.Barging})
	require.Nil(e.t, l)
	require.ErrorIs(e.t, err, locker.ErrUnsupported, "NewRW on a backend without driver.RWLocker")
	rc := e.rwViews(c)
	l, err = locker.NewRW(c.Backend, locker.Options[string]{Namespace: "a{b}", Mode: locker.Barging})
	require.Nil(e.t, l)
	requireArgumentError(e.t, err)
	rw := e.rwLocker(rc, locker.Options[string]{})
	for _, side := range []*locker.Locker[string]{rw.Read(), rw.Write()} {
		var calls []badCall
		for _, n := range []int{1, 2} {
			p := locker.WithPermits(n)
			calls = append(calls,
				badCall{fmt.Sprintf("TryLock with WithPermits(%d)", n), locker.ErrInvalidArgument,
					func() (*locker.Lock[string], error) { return side.TryLock(e.ctx, "k", longLease, p) }},
				badCall{fmt.Sprintf("Lock with WithPermits(%d)", n), locker.ErrInvalidArgument,
					func() (*locker.Lock[string], error) { return side.Lock(e.ctx, "k", time.Second, longLease, p) }},
				badCall{fmt.Sprintf("LockWithRenewal with WithPermits(%d)", n), locker.ErrInvalidArgument,
					func() (*locker.Lock[string], error) { return side.LockWithRenewal(e.ctx, "k", time.Second, p) }})
		}
		calls = append(calls, e.badCalls(side)["EmptyName"]...)
		e.rejects(calls)
		_, err := side.TryLockAll(e.ctx, []string{"k", "j"}, longLease, locker.WithPermits(1))
		requireArgumentError(e.t, err)
	}
	if e.h.Keys != nil {
		require.Empty(e.t, e.keys(), "calls with bad input wrote to the store")
	}
}

// rwWorkout drives every kind of read-write call on one key in each mode
// the backend supports, and returns with everything released.
func rwWorkout(e *env) {
	e.t.Helper()
	a, b := e.rwClient(), e.rwClient()
	modes := []locker.Mode{locker.Barging}
	if _, ok := a.Backend.(driver.Queue); ok {
		modes = append(modes, locker.Fair)
	}
	for _, m := range modes {
		e.mode = m
		o := locker.Options[string]{RenewLease: renewLease}
		la, lb := e.rwLocker(a, o), e.rwLocker(b, o)
		key := "rw-workout-" + modeName(m)
		name := e.name(la.Read(), key)

		hw := e.renewed(la.Write(), key, 0)
		hr := e.tryLock(la.Read(), key, longLease, locker.WithOwner(hw.Owner()))
		e.taken(lb.Read(), key, "the write lock is held")
		cctx, cancel := context.WithCancel(e.ctx)
		gone := acquiring(func() (*locker.Lock[string], error) { return lb.Write().Lock(cctx, key, locker.WaitForever, longLease) })
		e.awaitQueued(b.Client, b.write, name, 1)
		reader := acquiring(func() (*locker.Lock[string], error) { return lb.Read().LockWithRenewal(e.ctx, key, locker.WaitForever) })
		e.awaitQueued(b.Client, b.read, name, 2)
		cancel()
		requireCtxErr(e.t, await(e.t, patience, "the cancelled writer to return", gone).err, context.Canceled)
		writer := acquiring(func() (*locker.Lock[string], error) {
			return lb.Write().Lock(e.ctx, key, locker.WaitForever, longLease)
		})
		e.awaitQueued(b.Client, b.write, name, 2)
		e.release(hw) // a downgrade: the reader joins
		r := await(e.t, patience, "the reader to join the downgraded owner", reader)
		require.NoError(e.t, r.err)
		e.release(hr)
		e.release(r.lock)
		n := await(e.t, patience, "the writer to acquire", writer)
		require.NoError(e.t, n.err)
		e.release(n.lock)
	}
}

// rwNoKeysLeft: once a namespace is idle after a read-write workout, the
// store holds no key of it (apart from fence records).
func rwNoKeysLeft(e *env) {
	e.needKeys()
	c := e.rwClient()
	l := e.rwLocker(c, locker.Options[string]{})
	require.Empty(e.t, e.keys(), "keys of a fresh namespace")
	h := e.tryLock(l.Read(), "probe", longLease)
	require.NotEmpty(e.t, e.keys(), "Harness.Keys lists no key for a held read lock, so it cannot show leaks")
	e.release(h)
	rwWorkout(e)
	eventually(e.t, patience, "the store to hold no key of the idle namespace", func() (bool, error) {
		if left := e.keys(); len(left) > 0 {
			return false, fmt.Errorf("keys left: %q", strings.Join(left, " "))
		}
		return true, nil
	})
}

// rwNoSubscriptionsLeft: read and write waiters hold store subscriptions
// while they wait, and none is left once nobody waits.
func rwNoSubscriptionsLeft(e *env) {
	a, b := e.rwClient(), e.rwClient()
	e.needNotifier(b.Client)
	count := b.Subscriptions
	if count == nil {
		e.t.Skipf("conformance: Client.Subscriptions is not set, so subscription leaks are unchecked")
	}
	la, lb := e.rwLocker(a, locker.Options[string]{}), e.rwLocker(b, locker.Options[string]{})
	hx, hy := e.tryLock(la.Write(), "x", longLease), e.tryLock(la.Read(), "y", longLease)
	require.Zero(e.t, count(), "subscriptions of a client with no waiter")
	cctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	x1 := acquiring(func() (*locker.Lock[string], error) { return lb.Read().Lock(cctx, "x", locker.WaitForever, longLease) })
	e.awaitQueued(b.Client, b.read, hx.Name(), 1)
	x2 := acquiring(func() (*locker.Lock[string], error) {
		return lb.Write().Lock(e.ctx, "x", locker.WaitForever, longLease)
	})
	e.awaitQueued(b.Client, b.write, hx.Name(), 2)
	y1 := acquiring(func() (*locker.Lock[string], error) {
		return lb.Write().Lock(e.ctx, "y", locker.WaitForever, longLease)
	})
	e.awaitQueued(b.Client, b.write, hy.Name(), 1)
	eventually(e.t, patience, "waiters on 2 names to hold subscriptions", func() (bool, error) {
		return count() >= 2, nil
	})
	cancel()
	requireCtxErr(e.t, await(e.t, patience, "the cancelled waiter to return", x1).err, context.Canceled)
	e.release(hx)
	e.release(hy)
	for what, ch := range map[string]<-chan acq{"the writer of x to acquire": x2, "the writer of y to acquire": y1} {
		r := await(e.t, patience, what, ch)
		require.NoError(e.t, r.err, what)
		e.release(r.lock)
	}
	eventually(e.t, patience, "the client's subscriptions to drop to zero once nobody waits", func() (bool, error) {
		return count() == 0, nil
	})
}
