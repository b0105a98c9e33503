package conformance

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/locker"
	"github.com/disgolock/disgo/locker/driver"
)

// clockSlack is the most a store's lease may seem to end earlier than
// asked because its clock counts whole milliseconds (Redis PX and PTTL).
const clockSlack = 2 * time.Millisecond

// checkStoreLease requires that the store's own lease of h, as inspected,
// ends no earlier than h.Deadline(): the holder must never believe it
// holds the lock after the store let it go. It does nothing when c cannot
// be inspected.
func (e *env) checkStoreLease(c Client, h *locker.Lock[string], what string) {
	e.t.Helper()
	i, ok := inspector(c)
	if !ok {
		return
	}
	deadline := h.Deadline()
	st := e.state(i, h.Name())
	after := time.Now()
	if st.Owner != h.Owner() {
		e.t.Fatalf("%s: the store names %q as the owner, not the holder, whose Deadline() is %v away: the store's "+
			"lease ended before the holder's deadline", what, st.Owner, time.Until(deadline))
	}
	if end := after.Add(st.TTL + clockSlack); deadline.After(end) {
		e.t.Fatalf("%s: Lock.Deadline() is %v after the end of the store's lease (inspected TTL %v): "+
			"the holder would believe it holds the lock after the store let it go", what, deadline.Sub(end), st.TTL)
	}
}

// reentryNeverShortens: a re-entry with a shorter lease than the one left
// does not shorten the lease, neither in the store nor in the handle's
// Deadline.
func reentryNeverShortens(e *env) {
	a, b := e.client(), e.client()
	la, lb := e.locker(a, locker.Options[string]{}), e.locker(b, locker.Options[string]{})
	const key, lease = "reentry-lease", 3 * time.Second
	name := e.name(la, key)
	h1 := e.tryLock(la, key, lease)
	d1 := h1.Deadline()
	own := locker.WithOwner(h1.Owner())
	h2 := e.tryLock(la, key, shortLease, own)
	h3 := e.lock(la, key, time.Second, shortLease, own)
	for i, h := range []*locker.Lock[string]{h1, h2, h3} {
		require.False(e.t, h.Deadline().Before(d1), "Deadline of handle %d moved earlier after a re-entry with a shorter lease", i+1)
	}
	if i, ok := inspector(a); ok {
		st := e.state(i, name)
		require.Equal(e.t, 3, st.Count, "inspected hold count")
		require.Greater(e.t, st.TTL, lease/2,
			"the lease left after re-entries with a lease of %v: a re-entry shortened the lease of %v", shortLease, lease)
	}
	time.Sleep(shortLease + 100*time.Millisecond) // past the re-entries' own leases
	e.taken(lb, key, fmt.Sprintf("re-entries with a lease of %v must not shorten the lease of %v", shortLease, lease))
	for i, h := range []*locker.Lock[string]{h1, h2, h3} {
		require.NoError(e.t, h.Err(), "handle %d after re-entries with a shorter lease", i+1)
	}
	e.release(h2)
	e.release(h3)
	e.release(h1)
	e.release(e.tryLock(lb, key, longLease))
}

// extendedLeaseLength: Extend sets a lease of the length asked, in the
// right unit: the store's remaining lease is about that long, and another
// client gets the lock once it ran out, not before and not much later.
func extendedLeaseLength(e *env) {
	a, b := e.client(), e.client()
	la, lb := e.locker(a, locker.Options[string]{}), e.locker(b, locker.Options[string]{})
	const key, ext = "extended-length", time.Second
	name := e.name(la, key)
	h := e.tryLock(la, key, shortLease)
	before := time.Now()
	err := within(e.t, patience, "Extend", func() error { return h.Extend(e.ctx, ext) })
	require.NoError(e.t, err, "Extend")
	if i, ok := inspector(a); ok {
		st := e.state(i, name)
		elapsed := time.Since(before)
		require.LessOrEqual(e.t, st.TTL, ext+clockSlack, "the lease left after Extend(%v) is longer than asked (wrong unit?)", ext)
		require.GreaterOrEqual(e.t, st.TTL, ext-elapsed-clockSlack,
			"the lease left %v after Extend(%v) is shorter than asked (wrong unit?)", elapsed, ext)
	}
	e.checkStoreLease(a, h, "after Extend")
	w := acquiring(func() (*locker.Lock[string], error) { return lb.Lock(e.ctx, key, ext+patience, longLease) })
	r := await(e.t, ext+2*time.Second,
		fmt.Sprintf("another client to acquire once a lease extended to %v ran out (a longer lease: wrong unit?)", ext), w)
	require.NoError(e.t, r.err)
	require.False(e.t, r.at.Before(before.Add(ext-clockSlack)),
		"another client acquired %v after Extend(%v): the extended lease was shorter than asked", r.at.Sub(before), ext)
	awaitClosed(e.t, patience, "Done of the holding whose extended lease ran out", h.Done())
	require.ErrorIs(e.t, h.Err(), locker.ErrLost)
	e.release(r.lock)
}

// killedHolderFreed: the leases that renewal sets are RenewLease long, and
// the auto-renewed lock of a holder whose client dies frees within
// RenewLease (plus a margin) once renewal stopped.
func killedHolderFreed(e *env) {
	a, b := e.client(), e.client()
	e.needKill(a)
	la, lb := e.locker(a, locker.Options[string]{RenewLease: renewLease}), e.locker(b, locker.Options[string]{})
	const key = "killed-holder"
	name := e.name(la, key)
	h := e.renewed(la, key, 0)
	d0 := h.Deadline()
	time.Sleep(renewLease) // a few renewals
	require.NoError(e.t, h.Err(), "an auto-renewed lock was lost")
	require.True(e.t, h.Deadline().After(d0), "the deadline did not move with renewal")
	if i, ok := inspector(a); ok {
		st := e.state(i, name)
		require.Equal(e.t, h.Owner(), st.Owner, "inspected owner")
		require.LessOrEqual(e.t, st.TTL, renewLease+clockSlack,
			"the lease left after renewals is longer than RenewLease %v (wrong unit?)", renewLease)
		require.Positive(e.t, st.TTL)
	}
	e.checkStoreLease(a, h, "after renewals")
	w := acquiring(func() (*locker.Lock[string], error) { return lb.Lock(e.ctx, key, locker.WaitForever, longLease) })
	e.awaitWaiting(b, name, 1)
	a.Kill()
	r := await(e.t, renewLease+2*time.Second,
		fmt.Sprintf("another client to acquire once the auto-renewed lease (RenewLease %v) of a killed holder ran out", renewLease), w)
	require.NoError(e.t, r.err)
	require.Greater(e.t, r.lock.Fence(), h.Fence())
	e.release(r.lock)
}

// deadlineBeforeRequest: a lease deadline is taken before the request that
// set the lease was sent. Through a backend whose replies come late, every
// Lock.Deadline() (TryLock, Extend, LockWithRenewal and its renewals, a
// waiting Lock, and in fair mode a lock handed over by a release) is no
// later than the moment the request reached the driver plus the lease;
// for a hand-over, the moment the release reached it plus min(lease,
// WaiterTTL). And the store's lease ends no earlier than the deadline: its
// inspected TTL covers it, and a waiter behind the holder, which never
// releases, acquires no earlier than the holder's Deadline().
func deadlineBeforeRequest(e *env) {
	a, b, c := e.client(), e.client(), e.client()
	rec := newRequests()
	const ttl = 600 * time.Millisecond // fair: heartbeat 200 ms, and a grant of min(lease, ttl) is taken without a round trip
	o := locker.Options[string]{RenewLease: renewLease, WaiterTTL: ttl}
	la, lb := e.timedLocker(a, rec, o), e.timedLocker(b, rec, o)
	lc := e.locker(c, o)

	h := e.tryLock(la, "deadline-trylock", longLease)
	rec.requireBefore(e, h, "TryLock", rec.acquired, longLease)
	e.checkStoreLease(a, h, "TryLock")
	err := within(e.t, patience, "Extend", func() error { return h.Extend(e.ctx, 3*time.Second) })
	require.NoError(e.t, err, "Extend")
	rec.requireBefore(e, h, "Extend", rec.extended, 3*time.Second)
	e.checkStoreLease(a, h, "Extend")
	e.release(h)

	h = e.renewed(la, "deadline-renewed", 0)
	rec.requireBefore(e, h, "LockWithRenewal", rec.acquired, renewLease)
	eventually(e.t, patience, "a renewal of the lease", func() (bool, error) {
		_, ok := rec.last(rec.extended, h.Owner())
		return ok, nil
	})
	time.Sleep(renewLease / 2)
	rec.requireBefore(e, h, "renewal", rec.extended, renewLease)
	e.checkStoreLease(a, h, "renewal")
	e.release(h)

	// A waiting Lock, which in fair mode a release hands the lock to. In
	// fair mode a second waiter queues behind it at once; in barging mode,
	// once it holds the lock (it would race it otherwise).
	const key, lease = "deadline-waited", ttl
	name := e.name(la, key)
	h0 := e.tryLock(lb, key, longLease)
	w := acquiring(func() (*locker.Lock[string], error) { return la.Lock(e.ctx, key, patience, lease) })
	e.awaitWaiting(a, name, 1)
	var x <-chan acq
	behind := func() {
		x = acquiring(func() (*locker.Lock[string], error) { return lc.Lock(e.ctx, key, 2*patience, longLease) })
	}
	if e.mode == locker.Fair {
		behind()
		e.awaitWaiting(a, name, 2)
		time.Sleep(lease) // the waiter has waited longer than its lease before the hand-over
	}
	e.release(h0)
	r := await(e.t, patience, "the waiter to acquire once the holder released", w)
	require.NoError(e.t, r.err)
	if x == nil {
		behind()
	}
	if _, ok := rec.last(rec.acquired, r.lock.Owner()); ok {
		rec.requireBefore(e, r.lock, "a waiting Lock", rec.acquired, lease)
	} else {
		// Handed over by the release, without an attempt of its own.
		rel, ok := rec.last(rec.released, name)
		require.True(e.t, ok, "the waiter acquired without an attempt and without a release")
		if end := rel.Add(min(lease, ttl)); r.lock.Deadline().After(end) {
			e.t.Fatalf("the Deadline() of a lock handed over by a release is %v after the release's reply from the "+
				"driver plus the grant lease %v", r.lock.Deadline().Sub(end), min(lease, ttl))
		}
	}
	e.checkStoreLease(a, r.lock, "a waiting Lock")
	n := await(e.t, 2*patience, "the waiter behind a holder that never releases to acquire", x)
	require.NoError(e.t, n.err)
	if d := r.lock.Deadline(); n.at.Before(d.Add(-clockSlack)) {
		e.t.Fatalf("another client acquired %v before the holder's Deadline(): the store's lease ended before the "+
			"holder's deadline", d.Sub(n.at))
	}
	e.release(n.lock)
}

// timedLocker makes a Locker on c whose backend replies late and records
// when each request reached it (see requests).
func (e *env) timedLocker(c Client, rec *requests, o locker.Options[string]) *locker.Locker[string] {
	e.t.Helper()
	t := &timed{b: c.Backend, rec: rec, delay: 50 * time.Millisecond}
	var (
		q  driver.Queue
		be driver.BatchExtender
	)
	if x, ok := c.Backend.(driver.BatchExtender); ok {
		be = timedBatch{t, x}
	}
	if x, ok := c.Backend.(driver.Queue); ok {
		q = timedQueue{t, x}
	}
	b := decorated(t, q, be)
	if n, ok := c.Backend.(driver.Notifier); ok {
		o.Notifier = n
	}
	l, err := locker.New(b, e.options(o))
	require.NoError(e.t, err, "locker.New")
	e.closeAtCleanup(l)
	return l
}

// requests records when requests reached the drivers of timed backends,
// once their replies were delivered: per owner, the latest acquiring call
// answered "acquired" and the latest extension answered "held"; per name,
// the latest final release (at once: a grant may be taken before its reply).
type requests struct {
	mu       sync.Mutex
	acquired map[string]time.Time
	extended map[string]time.Time
	released map[string]time.Time
}

func newRequests() *requests {
	return &requests{acquired: make(map[string]time.Time), extended: make(map[string]time.Time), released: make(map[string]time.Time)}
}

// note records at as the latest time of key in m.
func (r *requests) note(m map[string]time.Time, key string, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if at.After(m[key]) {
		m[key] = at
	}
}

// last returns the latest time recorded in m for key.
func (r *requests) last(m map[string]time.Time, key string) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	at, ok := m[key]
	return at, ok
}

// requireBefore requires that h's deadline is no later than the latest
// request of h's owner recorded in m plus lease: it was taken before that
// request was sent. The deadline is read between two lookups that agree,
// so that it comes from that request or an earlier one (renewals go on
// meanwhile).
func (r *requests) requireBefore(e *env, h *locker.Lock[string], what string, m map[string]time.Time, lease time.Duration) {
	e.t.Helper()
	for range 100 {
		at, ok := r.last(m, h.Owner())
		require.True(e.t, ok, "%s: no request of the owner reached the driver", what)
		deadline := h.Deadline()
		if again, _ := r.last(m, h.Owner()); !again.Equal(at) {
			continue // a renewal came back meanwhile
		}
		if end := at.Add(lease); deadline.After(end) {
			e.t.Fatalf("%s: Lock.Deadline() is %v later than the time the request reached the driver plus the lease "+
				"%v: the deadline was not taken before the request was sent", what, deadline.Sub(end), lease)
		}
		return
	}
	e.t.Fatalf("%s: the requests of the owner kept changing", what)
}

// timed is a Backend whose replies come delay late, recording when each
// request reached it.
type timed struct {
	b     driver.Backend
	rec   *requests
	delay time.Duration
}

func (t *timed) late() { time.Sleep(t.delay) }

func (t *timed) Acquire(ctx context.Context, req driver.AcquireRequest) (driver.AcquireResult, error) {
	at := time.Now()
	res, err := t.b.Acquire(ctx, req)
	t.late()
	if err == nil && res.Acquired {
		t.rec.note(t.rec.acquired, req.Owner, at)
	}
	return res, err
}

func (t *timed) Release(ctx context.Context, name, owner, ticket string) (bool, int, error) {
	held, n, err := t.b.Release(ctx, name, owner, ticket)
	// The store applied the release, and started the grant's lease, before
	// its reply came: noted at the reply, before the reply delay (a grant
	// may be taken before the caller gets the reply). Noted at the call
	// instead, a waiter's attempt made on another connection after the call
	// but run by the store before the release would set a later deadline.
	if err == nil && held && n == 0 {
		t.rec.note(t.rec.released, name, time.Now())
	}
	t.late()
	return held, n, err
}

func (t *timed) Extend(ctx context.Context, name, owner string, lease time.Duration) (bool, error) {
	at := time.Now()
	held, err := t.b.Extend(ctx, name, owner, lease)
	t.late()
	if err == nil && held {
		t.rec.note(t.rec.extended, owner, at)
	}
	return held, err
}

// timedBatch is a timed Backend that extends in batches.
type timedBatch struct {
	*timed
	batch driver.BatchExtender
}

func (t timedBatch) ExtendBatch(ctx context.Context, batch []driver.Extension) error {
	at := time.Now()
	err := t.batch.ExtendBatch(ctx, batch)
	t.late()
	if err == nil {
		for _, x := range batch {
			if x.Err == nil && x.Held {
				t.rec.note(t.rec.extended, x.Owner, at)
			}
		}
	}
	return err
}

// decorated is a wrapping Backend b with the optional capabilities q and be
// (each nil when the wrapped backend lacks it): a decorator forwards
// exactly the optional interfaces the driver package lists.
func decorated(b driver.Backend, q driver.Queue, be driver.BatchExtender) driver.Backend {
	type withQueue struct {
		driver.Backend
		driver.Queue
	}
	type withBatch struct {
		driver.Backend
		driver.BatchExtender
	}
	type withBoth struct {
		driver.Backend
		driver.Queue
		driver.BatchExtender
	}
	switch {
	case q != nil && be != nil:
		return withBoth{b, q, be}
	case q != nil:
		return withQueue{b, q}
	case be != nil:
		return withBatch{b, be}
	}
	return b
}

// timedQueue is the Queue of a timed Backend.
type timedQueue struct {
	*timed
	q driver.Queue
}

func (t timedQueue) AcquireFair(ctx context.Context, req driver.AcquireRequest, waiterTTL time.Duration) (driver.AcquireResult, error) {
	at := time.Now()
	res, err := t.q.AcquireFair(ctx, req, waiterTTL)
	t.late()
	if err == nil && res.Acquired {
		t.rec.note(t.rec.acquired, req.Owner, at)
	}
	return res, err
}

func (t timedQueue) Leave(ctx context.Context, name, ticket string) error {
	err := t.q.Leave(ctx, name, ticket)
	t.late()
	return err
}
