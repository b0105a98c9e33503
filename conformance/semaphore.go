package conformance

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/internal/token"
	"github.com/disgolock/disgo/locker"
	"github.com/disgolock/disgo/locker/driver"
)

// The Semaphore group: counting semaphores ([driver.Semaphorer],
// locker.NewSemaphore).

// permits is the call option of k permits.
func permits(k int) locker.CallOption { return locker.WithPermits(k) }

// semTaken requires that a TryLock of k permits of key on l fails with
// ErrNotObtained.
func (e *env) semTaken(l *locker.Locker[string], key string, k int, why string) {
	e.t.Helper()
	r := within(e.t, patience, fmt.Sprintf("TryLock(%q) of %d permits", key, k), func() acq {
		h, err := l.TryLock(e.ctx, key, longLease, permits(k))
		return acq{lock: h, err: err}
	})
	if r.err == nil {
		_ = r.lock.Release(e.ctx)
		e.t.Fatalf("TryLock(%q) of %d permits succeeded, but %s", key, k, why)
	}
	requireNotObtained(e.t, r.err)
}

// checkSem compares the inspected state of the semaphore name with the
// expected limit and holdings (owner -> permits), when view can be
// inspected; every holding has hold count 1 unless counts says otherwise.
func (e *env) checkSem(view driver.Backend, name string, limit int, holds map[*locker.Lock[string]]int, counts map[string]int) {
	e.t.Helper()
	st, ok := e.viewState(view, name)
	if !ok {
		return
	}
	used := 0
	for _, k := range holds {
		used += k
	}
	require.Empty(e.t, st.Owner, "a semaphore's inspected State.Owner")
	require.Equal(e.t, used, st.Used, "inspected permits in use of %q", name)
	require.LessOrEqual(e.t, st.Used, st.Limit, "inspected permits in use exceed the limit")
	if len(holds) > 0 {
		require.Equal(e.t, limit, st.Limit, "inspected limit of %q", name)
	}
	require.Len(e.t, st.Holders, len(holds), "inspected holdings of %q: %+v", name, st.Holders)
	for h, k := range holds {
		got, ok := holdingOf(st, h.Owner(), false)
		require.True(e.t, ok, "the inspected holdings %+v miss %q", st.Holders, h.Owner())
		require.Equal(e.t, k, got.Permits, "inspected permits of a holding")
		require.Equal(e.t, h.Fence(), got.Fence, "inspected fencing token of a holding")
		want := 1
		if n, ok := counts[h.Owner()]; ok {
			want = n
		}
		require.Equal(e.t, want, got.Count, "inspected hold count of a holding")
		require.Positive(e.t, got.TTL, "inspected lease of a holding")
	}
}

// semPermitsShared: holdings of several processes share the permits of a
// key; a request that does not fit waits until enough permits came back,
// whoever returns them; a semaphore of one permit is a mutex.
func semPermitsShared(e *env) {
	var cs []semClient
	var ls []*locker.Locker[string]
	for range 5 {
		c := e.semClient()
		cs = append(cs, c)
		ls = append(ls, e.semLocker(c, 4, locker.Options[string]{RenewLease: renewLease}))
	}
	const key = "permits-shared"
	h1 := e.tryLock(ls[0], key, longLease)
	h2 := e.renewed(ls[1], key, time.Second, permits(2))
	h3 := e.lock(ls[2], key, time.Second, longLease, permits(1))
	name := h1.Name()
	e.checkSem(cs[0].sem, name, 4, map[*locker.Lock[string]]int{h1: 1, h2: 2, h3: 1}, nil)
	e.semTaken(ls[3], key, 1, "the 4 permits are in use")
	w := acquiring(func() (*locker.Lock[string], error) {
		return ls[4].Lock(e.ctx, key, locker.WaitForever, longLease, permits(2))
	})
	e.awaitQueued(cs[4].Client, cs[4].sem, name, 1)
	e.release(h1)
	time.Sleep(20 * time.Millisecond) // room for a wrongly admitted waiter to show
	require.False(e.t, arrived(w), "a request for 2 permits acquired with 1 free")
	e.release(h3)
	r := await(e.t, patience, "the request for 2 permits to acquire once 2 were free", w)
	require.NoError(e.t, r.err)
	require.Greater(e.t, r.lock.Fence(), max(h1.Fence(), h2.Fence(), h3.Fence()))
	e.checkSem(cs[0].sem, name, 4, map[*locker.Lock[string]]int{h2: 2, r.lock: 2}, nil)
	e.release(h2)
	e.release(r.lock)
	e.checkSem(cs[0].sem, name, 4, nil, nil)

	// One permit: a mutex.
	m1, m2 := e.semLocker(cs[0], 1, locker.Options[string]{}), e.semLocker(cs[1], 1, locker.Options[string]{})
	h := e.tryLock(m1, "one-permit", longLease)
	e.taken(m2, "one-permit", "its one permit is held")
	e.release(h)
	e.release(e.tryLock(m2, "one-permit", longLease))
}

// semHammer: several clients × goroutines × rounds take random numbers of
// permits of one key with every acquiring call; the permits in use never
// exceed the limit (also as inspected meanwhile), every token is issued
// once, and each exceeds that of every holding seen before its call began.
func semHammer(e *env) {
	const clients, workers, rounds, limit = 3, 3, 10, 3
	const key = "sem-hammer"
	var (
		used   atomic.Int32
		fences fenceLog
		taken  [limit + 1]atomic.Int32
	)
	done := make(chan error, clients*workers)
	var first semClient
	for ci := range clients {
		c := e.semClient()
		if ci == 0 {
			first = c
		}
		l := e.semLocker(c, limit, locker.Options[string]{RenewLease: 2 * time.Second})
		for w := range workers {
			seed := uint64(ci*workers + w)
			go func() {
				rnd := rand.New(rand.NewPCG(seed, 7))
				done <- semWorker(e.ctx, l, key, int(seed), rounds, limit, rnd, &used, &fences, &taken)
			}()
		}
	}
	stop := make(chan struct{})
	halt := sync.OnceFunc(func() { close(stop) })
	defer halt()
	var watch <-chan error
	if i, ok := first.sem.(driver.Inspector); ok {
		name := e.name(e.semLocker(first, limit, locker.Options[string]{}), key)
		watch = loopUntil(stop, func() error {
			st, err := i.Inspect(e.ctx, name)
			if err != nil {
				return fmt.Errorf("inspect: %w", err)
			}
			sum := 0
			for _, h := range st.Holders {
				sum += h.Permits
			}
			switch {
			case st.Used > limit:
				return fmt.Errorf("inspected %d permits in use of a limit of %d", st.Used, limit)
			case st.Limit != 0 && st.Limit != limit:
				return fmt.Errorf("inspected limit %d of a semaphore of %d permits", st.Limit, limit)
			case st.Used > st.Limit:
				return fmt.Errorf("inspected %d permits in use, above the inspected limit %d", st.Used, st.Limit)
			case sum > limit:
				return fmt.Errorf("inspected holdings take %d permits of a limit of %d", sum, limit)
			}
			time.Sleep(time.Millisecond)
			return nil
		})
	}
	for i := range clients * workers {
		err := await(e.t, time.Minute, fmt.Sprintf("semaphore hammer worker %d of %d to finish", i+1, clients*workers), done)
		require.NoError(e.t, err)
	}
	halt()
	if watch != nil {
		require.NoError(e.t, await(e.t, patience, "the inspecting goroutine to stop", watch))
	}
	for k := 1; k <= limit; k++ {
		require.Positive(e.t, taken[k].Load(), "no holding of %d permits was taken", k)
	}
}

func semWorker(ctx context.Context, l *locker.Locker[string], key string, w, rounds, limit int, rnd *rand.Rand,
	used *atomic.Int32, fences *fenceLog, taken *[4]atomic.Int32) error {
	for r := range rounds {
		k := 1 + (w+r)%limit
		if r%2 == 1 {
			k = 1 + rnd.IntN(limit)
		}
		fences.mu.Lock()
		floor := fences.max
		fences.mu.Unlock()
		var (
			h   *locker.Lock[string]
			err error
		)
		switch (w + r) % 3 {
		case 0:
			h, err = l.Lock(ctx, key, locker.WaitForever, longLease, permits(k))
		case 1:
			h, err = l.LockWithRenewal(ctx, key, locker.WaitForever, permits(k))
		default:
			h, err = l.Lock(ctx, key, time.Minute, longLease, permits(k))
		}
		if err != nil {
			return fmt.Errorf("round %d: acquire %d permits: %w", r, k, err)
		}
		if n := used.Add(int32(k)); n > int32(limit) {
			return fmt.Errorf("round %d: %d permits of %q in use at once, of a limit of %d", r, n, key, limit)
		}
		if _, dup := fences.add(h.Fence()); dup {
			return fmt.Errorf("round %d: token %d issued twice", r, h.Fence())
		}
		if h.Fence() <= floor {
			return fmt.Errorf("round %d: token %d, not greater than %d of a holding seen before the call", r, h.Fence(), floor)
		}
		taken[k].Add(1)
		time.Sleep(100 * time.Microsecond)
		used.Add(-int32(k))
		if err := h.Err(); err != nil {
			return fmt.Errorf("round %d: the held semaphore reports %w", r, err)
		}
		if err := h.Release(ctx); err != nil {
			return fmt.Errorf("round %d: release: %w", r, err)
		}
	}
	return nil
}

// semReentrancy: an owner that holds k permits re-enters at once, from
// two clients and through every call, keeping its permits and token; a
// re-entry with another number of permits fails at once with ErrMismatch
// and changes nothing; the permits come back with the last release.
func semReentrancy(e *env) {
	a, b := e.semClient(), e.semClient()
	la, lb := e.semLocker(a, 3, locker.Options[string]{}), e.semLocker(b, 3, locker.Options[string]{})
	const key = "sem-reentrant"
	h1 := e.tryLock(la, key, longLease, permits(2))
	name := h1.Name()
	own := locker.WithOwner(h1.Owner())
	h2 := e.tryLock(la, key, longLease, own, permits(2))
	h3 := e.lock(lb, key, 0, longLease, own, permits(2))
	for i, h := range []*locker.Lock[string]{h2, h3} {
		require.Equal(e.t, h1.Fence(), h.Fence(), "re-entry %d keeps the token", i+1)
	}
	e.checkSem(a.sem, name, 3, map[*locker.Lock[string]]int{h1: 2}, map[string]int{h1.Owner(): 3})
	for what, call := range map[string]func() (*locker.Lock[string], error){
		"TryLock of 1 permit":           func() (*locker.Lock[string], error) { return la.TryLock(e.ctx, key, longLease, own, permits(1)) },
		"TryLock of the default permit": func() (*locker.Lock[string], error) { return la.TryLock(e.ctx, key, longLease, own) },
		"Lock(WaitForever) of 3 permits": func() (*locker.Lock[string], error) {
			return lb.Lock(e.ctx, key, locker.WaitForever, longLease, own, permits(3))
		},
		"LockWithRenewal(WaitForever) of 1 permit": func() (*locker.Lock[string], error) {
			return lb.LockWithRenewal(e.ctx, key, locker.WaitForever, own, permits(1))
		},
	} {
		e.rejected("a re-entry's "+what+" by the holder of 2 permits", locker.ErrMismatch, call)
	}
	res, err := e.driverAcquire(a.sem, driver.AcquireRequest{Name: name, Owner: h1.Owner(), Ticket: token.New(), Lease: longLease, Permits: 1, Limit: 3})
	require.ErrorIs(e.t, err, driver.ErrMismatch, "the semaphore view's Acquire of another number of permits by a holder")
	require.False(e.t, res.Acquired)
	e.checkSem(a.sem, name, 3, map[*locker.Lock[string]]int{h1: 2}, map[string]int{h1.Owner(): 3})
	e.checkWaitersOn(a.sem, name, 0)
	hx := e.tryLock(lb, key, longLease) // the third permit
	e.semTaken(lb, key, 1, "the 3 permits are in use")
	e.release(h2)
	e.release(h1)
	e.semTaken(lb, key, 1, "the re-entered holding of 2 permits is still held once")
	e.release(h3)
	hy := e.tryLock(lb, key, longLease, permits(2))
	require.Greater(e.t, hy.Fence(), hx.Fence())
	e.release(hx)
	e.release(hy)
}

// semLimitMismatch: while a key has holders, a call that declares another
// limit fails at once with ErrMismatch through every acquiring call and
// the driver, and changes nothing; once the key is free, a new limit is
// accepted and the old one is the mismatch.
func semLimitMismatch(e *env) {
	a, b := e.semClient(), e.semClient()
	l3a := e.semLocker(a, 3, locker.Options[string]{})
	l3b, l2b, l4b := e.semLocker(b, 3, locker.Options[string]{}), e.semLocker(b, 2, locker.Options[string]{}), e.semLocker(b, 4, locker.Options[string]{})
	const key = "sem-limit"
	h := e.tryLock(l3a, key, longLease, permits(2))
	name := h.Name()
	for lim, l := range map[int]*locker.Locker[string]{2: l2b, 4: l4b} {
		for what, call := range map[string]func() (*locker.Lock[string], error){
			"TryLock":                      func() (*locker.Lock[string], error) { return l.TryLock(e.ctx, key, longLease) },
			"Lock(WaitForever)":            func() (*locker.Lock[string], error) { return l.Lock(e.ctx, key, locker.WaitForever, longLease) },
			"LockWithRenewal(WaitForever)": func() (*locker.Lock[string], error) { return l.LockWithRenewal(e.ctx, key, locker.WaitForever) },
		} {
			e.rejected(fmt.Sprintf("%s with a limit of %d on a semaphore held with a limit of 3", what, lim), locker.ErrMismatch, call)
		}
	}
	res, err := e.driverAcquire(b.sem, driver.AcquireRequest{Name: name, Owner: locker.NewOwner(), Ticket: token.New(), Lease: longLease, Permits: 1, Limit: 4})
	require.ErrorIs(e.t, err, driver.ErrMismatch, "the semaphore view's Acquire with another limit")
	require.False(e.t, res.Acquired)
	if q, ok := b.sem.(driver.Queue); ok {
		type reply struct {
			res driver.AcquireResult
			err error
		}
		r := within(e.t, patience, "Queue.AcquireFair", func() reply {
			res, err := q.AcquireFair(e.ctx, driver.AcquireRequest{Name: name, Owner: locker.NewOwner(), Ticket: token.New(),
				Lease: longLease, Permits: 1, Limit: 2}, time.Minute)
			return reply{res, err}
		})
		require.ErrorIs(e.t, r.err, driver.ErrMismatch, "the semaphore view's AcquireFair with another limit")
		require.False(e.t, r.res.Acquired)
	}
	e.checkSem(a.sem, name, 3, map[*locker.Lock[string]]int{h: 2}, nil)
	e.checkWaitersOn(a.sem, name, 0)
	hb := e.tryLock(l3b, key, longLease) // the same limit: the third permit
	e.release(h)
	e.release(hb)

	h2 := e.tryLock(l2b, key, longLease, permits(2)) // free: a new limit is accepted
	e.checkSem(b.sem, name, 2, map[*locker.Lock[string]]int{h2: 2}, nil)
	e.rejected("TryLock with the former limit of 3", locker.ErrMismatch, func() (*locker.Lock[string], error) {
		return l3a.TryLock(e.ctx, key, longLease)
	})
	e.release(h2)
	e.release(e.tryLock(l3a, key, longLease, permits(3)))
}

// semFIFO: in fair mode waiters are admitted in arrival order, so a large
// request is not starved by small ones: while a request for all permits
// waits, a small request that would fit waits behind it; the small
// requests behind it are admitted together once it released.
func semFIFO(e *env) {
	hc := e.semClient()
	e.needFair(hc.Client)
	hl := e.semLocker(hc, 3, locker.Options[string]{})
	const key = "sem-fifo"
	a := e.tryLock(hl, key, longLease)
	b := e.tryLock(hl, key, longLease)
	name := a.Name()
	var ws []<-chan acq
	for i, k := range []int{3, 1, 1} {
		c := e.semClient()
		l := e.semLocker(c, 3, locker.Options[string]{})
		ws = append(ws, acquiring(func() (*locker.Lock[string], error) {
			return l.Lock(e.ctx, key, locker.WaitForever, longLease, permits(k))
		}))
		e.awaitQueued(c.Client, c.sem, name, i+1)
		if i == 0 {
			e.semTaken(e.semLocker(e.semClient(), 3, locker.Options[string]{}), key, 1, "a request for 3 permits waits ahead of it")
		}
	}
	quiet := func(what string, idx ...int) {
		e.t.Helper()
		time.Sleep(50 * time.Millisecond) // room for a wrongly admitted waiter to show
		for _, i := range idx {
			require.False(e.t, arrived(ws[i]), "waiter %d acquired %s", i, what)
		}
	}
	got := func(i int, floor int64) *locker.Lock[string] {
		e.t.Helper()
		r := await(e.t, patience, fmt.Sprintf("waiter %d to acquire", i), ws[i])
		require.NoError(e.t, r.err, "waiter %d", i)
		require.Greater(e.t, r.lock.Fence(), floor, "token of waiter %d", i)
		return r.lock
	}
	quiet("with 1 permit free behind a request for 3", 0, 1, 2)
	e.release(a)
	quiet("with 2 permits free behind a request for 3", 0, 1, 2)
	e.release(b)
	big := got(0, max(a.Fence(), b.Fence()))
	quiet("while the request for 3 held them", 1, 2)
	e.checkWaitersOn(hc.sem, name, 2)
	e.release(big)
	s1, s2 := got(1, big.Fence()), got(2, big.Fence()) // together: neither released yet
	e.checkSem(hc.sem, name, 3, map[*locker.Lock[string]]int{s1: 1, s2: 1}, nil)
	e.release(s1)
	e.release(s2)
	e.checkWaitersOn(hc.sem, name, 0)
}

// semLargeNotStarved: in fair mode a request for every permit gets them
// although small holdings of several processes keep permits in use without
// a pause, and no small request whose call began after the large one was
// queued gets in before it.
func semLargeNotStarved(e *env) {
	const limit, key = 3, "sem-not-starved"
	bc := e.semClient()
	e.needFair(bc.Client)
	bl := e.semLocker(bc, limit, locker.Options[string]{})
	name := e.name(bl, key)
	var queued, held atomic.Bool
	stop := make(chan struct{})
	halt := sync.OnceFunc(func() { close(stop) })
	defer halt()
	var loops []<-chan error
	for i := range limit {
		l := e.semLocker(e.semClient(), limit, locker.Options[string]{})
		loops = append(loops, loopUntil(stop, func() error {
			after := queued.Load()
			h, err := l.Lock(e.ctx, key, locker.WaitForever, longLease)
			if err != nil {
				return fmt.Errorf("small holder %d: %w", i, err)
			}
			if after && !held.Load() {
				_ = h.Release(e.ctx)
				return fmt.Errorf("small holder %d, whose call began after the large request was queued, acquired before it", i)
			}
			time.Sleep(time.Duration(5+5*i) * time.Millisecond)
			return h.Release(e.ctx)
		}))
	}
	insp, inspectable := bc.sem.(driver.Inspector)
	if inspectable {
		eventually(e.t, patience, "small holdings to share the permits", func() (bool, error) {
			s, err := insp.Inspect(e.ctx, name)
			return len(s.Holders) >= 2, err
		})
	} else {
		time.Sleep(stagger)
	}
	owner := locker.NewOwner()
	called := make(chan struct{})
	w := acquiring(func() (*locker.Lock[string], error) {
		defer close(called)
		return bl.Lock(e.ctx, key, locker.WaitForever, longLease, locker.WithOwner(owner), permits(limit))
	})
	if inspectable && e.queuedOrDone(insp, name, owner, called) {
		queued.Store(true)
	}
	r := await(e.t, patience, "the request for every permit to acquire under a stream of small holdings", w)
	held.Store(true)
	require.NoError(e.t, r.err)
	e.release(r.lock)
	halt()
	for i, l := range loops {
		require.NoError(e.t, await(e.t, patience, fmt.Sprintf("small holder %d to stop", i), l))
	}
}

// semWaiterLeaves: in fair mode, when a large request that blocks the
// small ones behind it gives up, those that fit are admitted at once,
// without a re-check of their own.
func semWaiterLeaves(e *env) {
	hc, bc := e.semClient(), e.semClient()
	e.needFair(hc.Client)
	o, quiet := e.quietOptions(locker.Options[string]{})
	hl, bl := e.semLocker(hc, 3, o), e.semLocker(bc, 3, o)
	const key = "sem-large-leaves"
	h := e.tryLock(hl, key, longLease)
	name := h.Name()
	bctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	big := acquiring(func() (*locker.Lock[string], error) {
		return bl.Lock(bctx, key, locker.WaitForever, longLease, permits(3))
	})
	e.awaitQueued(bc.Client, bc.sem, name, 1)
	var ss []<-chan acq
	for i := range 2 {
		c := e.semClient()
		l := e.semLocker(c, 3, o)
		ss = append(ss, acquiring(func() (*locker.Lock[string], error) {
			return l.Lock(e.ctx, key, quiet+patience, longLease)
		}))
		e.awaitQueued(c.Client, c.sem, name, i+2)
	}
	time.Sleep(20 * time.Millisecond)
	for i, s := range ss {
		require.False(e.t, arrived(s), "small request %d acquired past the large one queued ahead of it", i)
	}
	cancel()
	requireCtxErr(e.t, await(e.t, patience, "the large request that gave up to return", big).err, context.Canceled)
	for i, s := range ss {
		got := await(e.t, quiet/2, fmt.Sprintf("small request %d to be admitted once the large one ahead of it left (it would re-check on its own only after %v)", i, quiet), s)
		require.NoError(e.t, got.err)
		defer e.release(got.lock)
	}
	e.release(h)
}

// semDeadHolderExpires: the renewed permits of a holder whose process died
// come back with its lease, and a waiter gets them with a greater token.
func semDeadHolderExpires(e *env) {
	a, b, c := e.semClient(), e.semClient(), e.semClient()
	e.needKill(a.Client)
	la := e.semLocker(a, 3, locker.Options[string]{RenewLease: renewLease})
	lb, lc := e.semLocker(b, 3, locker.Options[string]{}), e.semLocker(c, 3, locker.Options[string]{})
	const key = "sem-dead-holder"
	ha := e.renewed(la, key, 0, permits(2))
	hb := e.tryLock(lb, key, longLease)
	name := ha.Name()
	w := acquiring(func() (*locker.Lock[string], error) {
		return lc.Lock(e.ctx, key, locker.WaitForever, longLease, permits(2))
	})
	e.awaitQueued(c.Client, c.sem, name, 1)
	a.Kill()
	r := await(e.t, renewLease+patience,
		fmt.Sprintf("the waiter to get the permits of a killed holder once its lease (RenewLease %v) ran out", renewLease), w)
	require.NoError(e.t, r.err)
	require.Greater(e.t, r.lock.Fence(), max(ha.Fence(), hb.Fence()))
	e.checkSem(c.sem, name, 3, map[*locker.Lock[string]]int{hb: 1, r.lock: 2}, nil)
	e.release(hb)
	e.release(r.lock)
}

// semFencing: every fresh holding's token exceeds every earlier one, also
// of holdings held at once; a re-entry keeps it; after an expiry it still
// grows; a "not acquired" answer reports the newest token.
func semFencing(e *env) {
	a, b := e.semClient(), e.semClient()
	la, lb := e.semLocker(a, 2, locker.Options[string]{}), e.semLocker(b, 2, locker.Options[string]{})
	const key = "sem-fence"
	var last int64
	fresh := func(h *locker.Lock[string], what string) {
		e.t.Helper()
		require.Greater(e.t, h.Fence(), last, "token of %s", what)
		last = h.Fence()
	}
	h1 := e.tryLock(la, key, longLease)
	name := h1.Name()
	fresh(h1, "the first holding")
	h2 := e.renewed(lb, key, time.Second)
	fresh(h2, "a holding taken while another holds")
	h1b := e.lock(lb, key, 0, longLease, locker.WithOwner(h1.Owner()))
	require.Equal(e.t, h1.Fence(), h1b.Fence(), "a re-entry keeps the token")
	res, err := e.driverAcquire(a.sem, driver.AcquireRequest{Name: name, Owner: locker.NewOwner(), Ticket: token.New(), Lease: longLease, Permits: 1, Limit: 2})
	require.NoError(e.t, err)
	require.False(e.t, res.Acquired, "Acquire of a permit while both are in use")
	require.GreaterOrEqual(e.t, res.Fence, last, "the \"not acquired\" Fence must not be lower than the newest token")
	e.release(h1)
	e.release(h1b)
	h3 := e.tryLock(la, key, longLease)
	fresh(h3, "a holding taken while another holds")
	e.release(h2)
	e.release(h3)
	h4 := e.tryLock(la, key, shortLease, permits(2))
	fresh(h4, "a holding of every permit")
	h5 := e.lock(lb, key, patience, longLease) // once h4's lease ran out
	fresh(h5, "a holding after an expiry")
	e.release(h5)
}

// semForceRelease: a force release frees every permit of the key: the
// renewed holders of other processes learn it at their next renewal
// (ErrRevoked), a fixed-lease holder's Extend says revoked, and the
// waiter for every permit gets them with a greater token; through the
// Locker that holds it, the handle ends at once. On a free key it fails
// with ErrNotHeld.
func semForceRelease(e *env) {
	a, b, w, op := e.semClient(), e.semClient(), e.semClient(), e.semClient()
	e.needViewForceRelease(op.sem)
	o := locker.Options[string]{RenewLease: renewLease}
	la, lb, lw, lop := e.semLocker(a, 3, o), e.semLocker(b, 3, o), e.semLocker(w, 3, o), e.semLocker(op, 3, o)
	const key = "sem-forced"
	require.ErrorIs(e.t, e.forceRelease(lop, key), locker.ErrNotHeld, "ForceRelease of a free semaphore")
	ha := e.renewed(la, key, 0)
	hb := e.renewed(lb, key, 0, permits(1))
	hb2 := e.tryLock(lb, key, longLease, locker.WithOwner(hb.Owner()), permits(1))
	hf := e.tryLock(la, key, longLease)
	name := ha.Name()
	waiter := acquiring(func() (*locker.Lock[string], error) {
		return lw.Lock(e.ctx, key, locker.WaitForever, longLease, permits(3))
	})
	e.awaitQueued(w.Client, w.sem, name, 1)

	require.NoError(e.t, e.forceRelease(lop, key), "ForceRelease of a semaphore held by three owners")
	r := await(e.t, patience, "the waiter for every permit to get them after the force release", waiter)
	require.NoError(e.t, r.err)
	require.Greater(e.t, r.lock.Fence(), max(ha.Fence(), hb.Fence(), hf.Fence()), "the next holder's token")
	for _, h := range []*locker.Lock[string]{ha, hb, hb2} {
		awaitClosed(e.t, renewLease+patience, "a renewed holder to learn of the force release at its next renewal", h.Done())
		require.ErrorIs(e.t, h.Err(), locker.ErrLost)
		require.ErrorIs(e.t, h.Err(), locker.ErrRevoked, "the loss names its cause")
	}
	err := within(e.t, patience, "Extend of a force-released holding", func() error { return hf.Extend(e.ctx, longLease) })
	require.ErrorIs(e.t, err, locker.ErrNotHeld)
	require.ErrorIs(e.t, err, locker.ErrRevoked, "the Extend names the force release")
	requireErr(e.t, e.releaseErr(ha), locker.ErrNotHeld)

	require.NoError(e.t, e.forceRelease(lw, key), "ForceRelease through the Locker that holds the semaphore")
	select {
	case <-r.lock.Done():
	default:
		e.t.Fatal("the holding of the Locker that force-released its own semaphore is still live")
	}
	require.ErrorIs(e.t, r.lock.Err(), locker.ErrRevoked)
	e.checkSem(op.sem, name, 3, nil, nil)
	e.release(e.tryLock(la, key, longLease, permits(3)))
}

// semTicketScoped (driver contract): a repeated attempt with the same
// ticket does not count the holding twice, and a release scoped to a
// stale ticket changes nothing.
func semTicketScoped(e *env) {
	c := e.semClient()
	l := e.semLocker(c, 3, locker.Options[string]{})
	name, owner := e.name(l, "sem-ticket-scoped"), locker.NewOwner()
	first, second := token.New(), token.New()
	acquire := func(ticket string) driver.AcquireResult {
		e.t.Helper()
		res, err := e.driverAcquire(c.sem, driver.AcquireRequest{Name: name, Owner: owner, Ticket: ticket, Lease: longLease, Permits: 2, Limit: 3})
		require.NoError(e.t, err, "Backend.Acquire")
		require.True(e.t, res.Acquired, "Backend.Acquire by the holder (a re-entry)")
		return res
	}
	require.Equal(e.t, 1, acquire(first).Count)
	require.Equal(e.t, 2, acquire(second).Count, "a re-entry with a new ticket")
	require.Equal(e.t, 2, acquire(second).Count, "an attempt repeated with the same ticket counted the holding twice")
	for _, stale := range []string{first, token.New()} {
		held, _ := e.driverRelease(c.sem, name, owner, stale)
		require.False(e.t, held, "a release scoped to a ticket that is not the owner's latest acquisition reported held")
	}
	if st, ok := e.viewState(c.sem, name); ok {
		require.Equal(e.t, 2, st.Used, "inspected permits in use of one holding of 2 permits, re-entered")
	}
	held, n := e.driverRelease(c.sem, name, owner, second)
	require.True(e.t, held)
	require.Equal(e.t, 1, n)
	held, n = e.driverRelease(c.sem, name, owner, "")
	require.True(e.t, held)
	require.Zero(e.t, n)
	e.checkSem(c.sem, name, 3, nil, nil)
	e.release(e.tryLock(l, "sem-ticket-scoped", longLease, permits(3))) // free
}

// semBadInput: NewSemaphore rejects a nil backend, a limit out of range
// and bad options, and a backend without semaphores is ErrUnsupported;
// every acquiring call with permits below 1 or above the limit is an
// ArgumentError, rejected before the store is touched; the limits
// themselves are accepted.
func semBadInput(e *env) {
	c := e.client()
	l, err := locker.NewSemaphore[string](nil, 3, locker.Options[string]{Mode: locker.Barging})
	require.Nil(e.t, l)
	requireArgumentError(e.t, err)
	for _, lim := range []int{0, -1, locker.MaxPermits + 1} {
		l, err := locker.NewSemaphore(c.Backend, lim, locker.Options[string]{Mode: locker.Barging})
		require.Nil(e.t, l, "NewSemaphore with a limit of %d", lim)
		requireArgumentError(e.t, err)
	}
	l, err = locker.NewSemaphore(struct{ driver.Backend }{c.Backend}, 3, locker.Options[string]{Mode: locker.Barging})
	require.Nil(e.t, l)
	require.ErrorIs(e.t, err, locker.ErrUnsupported, "NewSemaphore on a backend without driver.Semaphorer")
	sc := e.semViews(c)
	l, err = locker.NewSemaphore(c.Backend, 3, locker.Options[string]{Namespace: "a{b}", Mode: locker.Barging})
	require.Nil(e.t, l)
	requireArgumentError(e.t, err)
	sl := e.semLocker(sc, 3, locker.Options[string]{})
	var calls []badCall
	for _, k := range []int{0, -1, 4, locker.MaxPermits + 1} {
		p := permits(k)
		calls = append(calls,
			badCall{fmt.Sprintf("TryLock of %d permits", k), locker.ErrInvalidArgument,
				func() (*locker.Lock[string], error) { return sl.TryLock(e.ctx, "k", longLease, p) }},
			badCall{fmt.Sprintf("Lock of %d permits", k), locker.ErrInvalidArgument,
				func() (*locker.Lock[string], error) { return sl.Lock(e.ctx, "k", locker.WaitForever, longLease, p) }},
			badCall{fmt.Sprintf("LockWithRenewal of %d permits", k), locker.ErrInvalidArgument,
				func() (*locker.Lock[string], error) { return sl.LockWithRenewal(e.ctx, "k", time.Second, p) }})
		_, err := sl.TryLockAll(e.ctx, []string{"k", "j"}, longLease, p)
		requireArgumentError(e.t, err)
	}
	calls = append(calls, e.badCalls(sl)["EmptyName"]...)
	e.rejects(calls)
	if e.h.Keys != nil {
		require.Empty(e.t, e.keys(), "calls with bad input wrote to the store")
	}
	e.release(e.tryLock(sl, "k", longLease, permits(3))) // the limit is accepted
	big := e.semLocker(sc, locker.MaxPermits, locker.Options[string]{})
	h := e.tryLock(big, "max", longLease, permits(locker.MaxPermits))
	e.checkSem(sc.sem, h.Name(), locker.MaxPermits, map[*locker.Lock[string]]int{h: locker.MaxPermits}, nil)
	e.release(h)
}

// semWorkout drives every kind of semaphore call on one key in each mode
// the backend supports, and returns with everything released.
func semWorkout(e *env) {
	e.t.Helper()
	a, b := e.semClient(), e.semClient()
	modes := []locker.Mode{locker.Barging}
	if _, ok := a.Backend.(driver.Queue); ok {
		modes = append(modes, locker.Fair)
	}
	for _, m := range modes {
		e.mode = m
		o := locker.Options[string]{RenewLease: renewLease}
		la, lb := e.semLocker(a, 3, o), e.semLocker(b, 3, o)
		key := "sem-workout-" + modeName(m)
		name := e.name(la, key)

		h := e.renewed(la, key, 0, permits(2))
		h2 := e.tryLock(la, key, longLease, locker.WithOwner(h.Owner()), permits(2))
		h3 := e.tryLock(lb, key, longLease)
		e.semTaken(lb, key, 1, "every permit is held")
		cctx, cancel := context.WithCancel(e.ctx)
		gone := acquiring(func() (*locker.Lock[string], error) {
			return lb.Lock(cctx, key, locker.WaitForever, longLease, permits(3))
		})
		e.awaitQueued(b.Client, b.sem, name, 1)
		next := acquiring(func() (*locker.Lock[string], error) {
			return lb.LockWithRenewal(e.ctx, key, locker.WaitForever, permits(2))
		})
		e.awaitQueued(b.Client, b.sem, name, 2)
		cancel()
		requireCtxErr(e.t, await(e.t, patience, "the cancelled waiter to return", gone).err, context.Canceled)
		e.release(h2)
		e.release(h)
		n := await(e.t, patience, "the remaining waiter to acquire", next)
		require.NoError(e.t, n.err)
		e.release(n.lock)
		e.release(h3)
	}
}

// semNoKeysLeft: once a namespace is idle after a semaphore workout, the
// store holds no key of it (apart from fence records).
func semNoKeysLeft(e *env) {
	e.needKeys()
	c := e.semClient()
	l := e.semLocker(c, 2, locker.Options[string]{})
	require.Empty(e.t, e.keys(), "keys of a fresh namespace")
	h := e.tryLock(l, "probe", longLease)
	require.NotEmpty(e.t, e.keys(), "Harness.Keys lists no key for a held semaphore, so it cannot show leaks")
	e.release(h)
	semWorkout(e)
	eventually(e.t, patience, "the store to hold no key of the idle namespace", func() (bool, error) {
		if left := e.keys(); len(left) > 0 {
			return false, fmt.Errorf("keys left: %q", strings.Join(left, " "))
		}
		return true, nil
	})
}

// semNoSubscriptionsLeft: semaphore waiters hold store subscriptions while
// they wait, and none is left once nobody waits.
func semNoSubscriptionsLeft(e *env) {
	a, b := e.semClient(), e.semClient()
	e.needNotifier(b.Client)
	count := b.Subscriptions
	if count == nil {
		e.t.Skipf("conformance: Client.Subscriptions is not set, so subscription leaks are unchecked")
	}
	la, lb := e.semLocker(a, 2, locker.Options[string]{}), e.semLocker(b, 2, locker.Options[string]{})
	hx, hy := e.tryLock(la, "x", longLease, permits(2)), e.tryLock(la, "y", longLease, permits(2))
	require.Zero(e.t, count(), "subscriptions of a client with no waiter")
	cctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	x1 := acquiring(func() (*locker.Lock[string], error) { return lb.Lock(cctx, "x", locker.WaitForever, longLease) })
	e.awaitQueued(b.Client, b.sem, hx.Name(), 1)
	x2 := acquiring(func() (*locker.Lock[string], error) {
		return lb.Lock(e.ctx, "x", locker.WaitForever, longLease, permits(2))
	})
	e.awaitQueued(b.Client, b.sem, hx.Name(), 2)
	y1 := acquiring(func() (*locker.Lock[string], error) { return lb.Lock(e.ctx, "y", locker.WaitForever, longLease) })
	e.awaitQueued(b.Client, b.sem, hy.Name(), 1)
	eventually(e.t, patience, "waiters on 2 names to hold subscriptions", func() (bool, error) {
		return count() >= 2, nil
	})
	cancel()
	requireCtxErr(e.t, await(e.t, patience, "the cancelled waiter to return", x1).err, context.Canceled)
	e.release(hx)
	e.release(hy)
	for what, ch := range map[string]<-chan acq{"the second waiter of x to acquire": x2, "the waiter of y to acquire": y1} {
		r := await(e.t, patience, what, ch)
		require.NoError(e.t, r.err, what)
		e.release(r.lock)
	}
	eventually(e.t, patience, "the client's subscriptions to drop to zero once nobody waits", func() (bool, error) {
		return count() == 0, nil
	})
}

// semLimitKeptByWaiters: the limit stays recorded while only waiters are
// left: once every holding has lapsed (its holder died) and before a
// queued waiter comes back, a call that declares another limit is the one
// refused with ErrMismatch, not the waiter.
func semLimitKeptByWaiters(e *env) {
	a, b := e.semClient(), e.semClient()
	q, ok := a.sem.(driver.Queue)
	if !ok {
		e.t.Skipf("conformance: the semaphore view %T does not implement driver.Queue, so waiters keeping the limit is untested", a.sem)
	}
	la := e.semLocker(a, 3, locker.Options[string]{})
	l5 := e.semLocker(b, 5, locker.Options[string]{})
	const key = "sem-limit-waiters"
	h := e.tryLock(la, key, shortLease, permits(3))
	name := h.Name()
	w := driver.AcquireRequest{Name: name, Owner: locker.NewOwner(), Ticket: token.New(), Lease: longLease, Permits: 1, Limit: 3}
	type reply struct {
		res driver.AcquireResult
		err error
	}
	r := within(e.t, patience, "Queue.AcquireFair", func() reply {
		res, err := q.AcquireFair(e.ctx, w, time.Minute)
		return reply{res, err}
	})
	require.NoError(e.t, r.err)
	require.False(e.t, r.res.Acquired, "a permit while all 3 are held")
	e.t.Cleanup(func() {
		_ = q.Leave(context.WithoutCancel(e.ctx), name, w.Ticket)
		_, _, _ = a.sem.Release(context.WithoutCancel(e.ctx), name, w.Owner, "")
	})
	// The holding lapses; the waiter does not come back on its own (it is
	// a bare driver call), so only it is left. The store's lease began
	// after the call that took it, so it may end later than the handle's
	// deadline by that call's latency: where the view can be inspected,
	// wait until the store has no live holding left.
	time.Sleep(time.Until(h.Deadline()) + 100*time.Millisecond)
	if insp, ok := a.sem.(driver.Inspector); ok {
		eventually(e.t, patience, "the store to report the holding lapsed", func() (bool, error) {
			st, err := insp.Inspect(e.ctx, name)
			return err == nil && st.Used == 0, err
		})
	}
	e.rejected("TryLock with a limit of 5 while a waiter of limit 3 is queued", locker.ErrMismatch, func() (*locker.Lock[string], error) {
		return l5.TryLock(e.ctx, key, longLease)
	})
	r = within(e.t, patience, "Queue.AcquireFair", func() reply {
		res, err := q.AcquireFair(e.ctx, w, time.Minute)
		return reply{res, err}
	})
	require.NoError(e.t, r.err, "the queued waiter's next attempt")
	require.True(e.t, r.res.Acquired, "the waiter at the head of the queue, once the holding lapsed")
	held, _, err := a.sem.Release(e.ctx, name, w.Owner, "")
	require.NoError(e.t, err)
	require.True(e.t, held)
}
