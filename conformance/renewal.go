package conformance

import (
	"context"
	"sync"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/locker"
	"github.com/disgolock/disgo/locker/driver"
)

// heldAcrossLeases: an auto-renewed lock stays held over many lease
// lengths: no loss signal, its deadline moves, nobody else gets it.
func heldAcrossLeases(e *env) {
	a, b := e.client(), e.client()
	la, lb := e.locker(a, locker.Options[string]{RenewLease: renewLease}), e.locker(b, locker.Options[string]{})
	const key, leases = "renewed", 4
	name := e.name(la, key)
	h := e.renewed(la, key, 0)
	d0 := h.Deadline()
	for end := time.Now().Add(leases * renewLease); time.Now().Before(end); {
		select {
		case <-h.Done():
			e.t.Fatalf("an auto-renewed lock was lost: %v", h.Err())
		case <-time.After(renewLease / 2):
		}
		e.taken(lb, key, "its holder keeps renewing it")
	}
	require.NoError(e.t, h.Err())
	require.True(e.t, h.Deadline().After(d0.Add(renewLease)),
		"the deadline did not move with renewal: %v at first, %v after %d leases", d0, h.Deadline(), leases)
	e.checkState(a, name, h.Owner(), 1)
	e.release(h)
	require.ErrorIs(e.t, h.Err(), locker.ErrReleased)
}

// extendFixedLease: Extend moves a fixed lease, and the holding outlives
// its original deadline.
func extendFixedLease(e *env) {
	a, b := e.client(), e.client()
	la, lb := e.locker(a, locker.Options[string]{}), e.locker(b, locker.Options[string]{})
	const key = "extended"
	h := e.tryLock(la, key, shortLease)
	d0 := h.Deadline()
	err := within(e.t, patience, "Extend", func() error { return h.Extend(e.ctx, 5*time.Second) })
	require.NoError(e.t, err, "Extend")
	require.True(e.t, h.Deadline().After(d0.Add(time.Second)), "Extend did not move the deadline: %v, then %v", d0, h.Deadline())
	time.Sleep(2 * shortLease) // past the original deadline
	require.NoError(e.t, h.Err(), "an extended holding was reported lost at its original deadline")
	e.taken(lb, key, "its lease was extended")
	e.release(h)
}

// wipe deletes every record of name through the harness.
func (e *env) wipe(name string) {
	e.t.Helper()
	err := within(e.t, patience, "Harness.Wipe", func() error { return e.h.Wipe(e.ctx, name) })
	require.NoError(e.t, err, "Harness.Wipe(%q)", name)
}

// awaitLost waits for the loss signal of h and checks it.
func (e *env) awaitLost(h *locker.Lock[string], what string) {
	e.t.Helper()
	awaitClosed(e.t, renewLease+patience, what, h.Done())
	require.ErrorIs(e.t, h.Err(), locker.ErrLost)
}

// lossOnDelete: when the records of a renewed lock are deleted, the holder
// is told, and its release reports not-held.
func lossOnDelete(e *env) {
	e.needWipe()
	la := e.locker(e.client(), locker.Options[string]{RenewLease: renewLease})
	const key = "deleted"
	h := e.renewed(la, key, 0)
	e.wipe(h.Name())
	e.awaitLost(h, "the holder to be told of the loss after its records were deleted")
	requireErr(e.t, e.releaseErr(h), locker.ErrNotHeld)
}

// lossOnSteal: when another owner takes a renewed lock whose records were
// deleted, the old holder is told, and its release changes nothing.
func lossOnSteal(e *env) {
	e.needWipe()
	a, b := e.client(), e.client()
	la, lb, lc := e.locker(a, locker.Options[string]{RenewLease: renewLease}), e.locker(b, locker.Options[string]{}), e.locker(b, locker.Options[string]{})
	const key = "stolen"
	h := e.renewed(la, key, 0)
	e.wipe(h.Name())
	thief := e.tryLock(lb, key, longLease)
	e.awaitLost(h, "the holder to be told of the loss after another owner took the lock")
	requireErr(e.t, e.releaseErr(h), locker.ErrNotHeld)
	require.NoError(e.t, thief.Err())
	e.checkState(b, thief.Name(), thief.Owner(), 1)
	e.taken(lc, key, "the new owner holds it")
	e.release(thief)
}

// lossWhenCutOff: a holder whose client is cut off from the store is told
// of the loss once its lease could not be renewed.
func lossWhenCutOff(e *env) {
	a := e.client()
	e.needKill(a)
	la := e.locker(a, locker.Options[string]{RenewLease: renewLease})
	h := e.renewed(la, "cut-off", 0)
	a.Kill()
	e.awaitLost(h, "the holder to be told of the loss after its client was cut off from the store")
}

// nothingRenewedAfterRelease: renewal continues while a re-entrant hold
// remains, and no renewal is sent once the last hold was released.
func nothingRenewedAfterRelease(e *env) {
	a, b := e.client(), e.client()
	sb, sp := spyOn(a.Backend)
	o := locker.Options[string]{RenewLease: renewLease}
	if n, ok := a.Backend.(driver.Notifier); ok {
		o.Notifier = n
	}
	la, err := locker.New(sb, e.options(o))
	require.NoError(e.t, err, "locker.New")
	e.closeAtCleanup(la)
	lb := e.locker(b, locker.Options[string]{})
	const key = "renewal-stops"

	h1 := e.renewed(la, key, 0)
	owner := h1.Owner()
	h2 := e.renewed(la, key, 0, locker.WithOwner(owner))
	e.release(h1)
	n0 := sp.extends(owner)
	time.Sleep(2 * renewLease)
	require.NoError(e.t, h2.Err(), "the remaining hold was lost after the first of two releases")
	e.taken(lb, key, "one of two holds remains and is renewed")
	require.Greater(e.t, sp.extends(owner), n0, "renewal stopped after the first of two releases")

	e.release(h2)
	n1 := sp.extends(owner)
	e.release(e.tryLock(lb, key, longLease)) // free at once after the last release
	time.Sleep(2 * renewLease)
	require.Equal(e.t, n1, sp.extends(owner), "renewals were sent after the last release")
	e.release(e.tryLock(lb, key, longLease))
}

// spy counts the renewals a Backend is asked for, per owner.
type spy struct {
	driver.Backend
	mu    sync.Mutex
	count map[string]int
}

// batchSpy is a spy on a Backend that extends in batches.
type batchSpy struct {
	*spy
	batch driver.BatchExtender
}

// spyOn wraps b, keeping its driver.BatchExtender capability if it has one.
func spyOn(b driver.Backend) (driver.Backend, *spy) {
	s := &spy{Backend: b, count: make(map[string]int)}
	q, _ := b.(driver.Queue)
	var be driver.BatchExtender
	if x, ok := b.(driver.BatchExtender); ok {
		be = batchSpy{s, x}
	}
	return decorated(s, q, be), s
}

func (s *spy) add(owner string) {
	s.mu.Lock()
	s.count[owner]++
	s.mu.Unlock()
}

func (s *spy) extends(owner string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count[owner]
}

func (s *spy) Extend(ctx context.Context, name, owner string, lease time.Duration) (bool, error) {
	s.add(owner)
	return s.Backend.Extend(ctx, name, owner, lease)
}

func (s batchSpy) ExtendBatch(ctx context.Context, batch []driver.Extension) error {
	for _, x := range batch {
		s.add(x.Owner)
	}
	return s.batch.ExtendBatch(ctx, batch)
}
