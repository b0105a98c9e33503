package conformance

import (
	"github.com/disgolock/disgo/internal/token"
	"github.com/disgolock/disgo/locker/driver"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/locker"
)

// releaseByNonHolder: a release or extend by an owner that does not hold
// the lock reports not-held and changes nothing, both at the Backend and
// through a handle whose lease ran out and whose lock another owner took.
func releaseByNonHolder(e *env) {
	a, b := e.client(), e.client()
	la, lb, lc := e.locker(a, locker.Options[string]{}), e.locker(b, locker.Options[string]{}), e.locker(b, locker.Options[string]{})
	const key = "non-holder"
	h := e.tryLock(la, key, longLease)
	name, stranger := h.Name(), locker.NewOwner()

	type reply struct {
		held bool
		err  error
	}
	r := within(e.t, patience, "Backend.Release by a stranger", func() reply {
		held, _, err := b.Backend.Release(e.ctx, name, stranger, "")
		return reply{held, err}
	})
	require.NoError(e.t, r.err, "Backend.Release by a stranger")
	require.False(e.t, r.held, "Backend.Release by an owner that does not hold the lock reported held")
	r = within(e.t, patience, "Backend.Extend by a stranger", func() reply {
		held, err := b.Backend.Extend(e.ctx, name, stranger, time.Second)
		return reply{held, err}
	})
	require.NoError(e.t, r.err, "Backend.Extend by a stranger")
	require.False(e.t, r.held, "Backend.Extend by an owner that does not hold the lock reported held")
	e.checkState(a, name, h.Owner(), 1)
	e.taken(lc, key, "a release by a non-holder must change nothing")
	e.release(h)

	old := e.tryLock(la, key, shortLease)
	thief := e.lock(lb, key, patience, longLease)
	requireErr(e.t, e.releaseErr(old), locker.ErrNotHeld)
	err := within(e.t, patience, "Extend of an expired holding", func() error { return old.Extend(e.ctx, time.Minute) })
	requireErr(e.t, err, locker.ErrNotHeld)
	require.NoError(e.t, thief.Err())
	e.checkState(b, name, thief.Owner(), 1)
	e.taken(lc, key, "the release and extend of an expired holding must change nothing")
	e.release(thief)
}

// releaseDouble: releasing a handle twice reports not-held the second
// time, and does not undo another hold of the same owner.
func releaseDouble(e *env) {
	a, b := e.client(), e.client()
	la, lb := e.locker(a, locker.Options[string]{}), e.locker(b, locker.Options[string]{})
	const key = "double"
	h := e.tryLock(la, key, longLease)
	e.release(h)
	requireErr(e.t, e.releaseErr(h), locker.ErrNotHeld)
	e.release(e.tryLock(lb, key, longLease))

	h1 := e.tryLock(la, key, longLease)
	h2 := e.tryLock(la, key, longLease, locker.WithOwner(h1.Owner()))
	e.release(h1)
	requireErr(e.t, e.releaseErr(h1), locker.ErrNotHeld)
	e.checkState(a, h1.Name(), h1.Owner(), 1)
	e.taken(lb, key, "a second release of one handle must not undo the hold of another")
	e.release(h2)
	e.release(e.tryLock(lb, key, longLease))
}

// releaseAfterExpiry: a fixed-lease holding signals its loss at its
// deadline; a later release or extend reports not-held and changes nothing.
func releaseAfterExpiry(e *env) {
	a, b := e.client(), e.client()
	la, lb := e.locker(a, locker.Options[string]{}), e.locker(b, locker.Options[string]{})
	const key = "after-expiry"
	h := e.tryLock(la, key, shortLease)
	awaitClosed(e.t, patience, "Done of a fixed-lease holding to close at its deadline", h.Done())
	require.False(e.t, time.Now().Before(h.Deadline()), "Done closed before the deadline %v", h.Deadline())
	require.ErrorIs(e.t, h.Err(), locker.ErrLost)
	e.release(e.lock(lb, key, patience, longLease)) // the store let it go
	requireErr(e.t, e.releaseErr(h), locker.ErrNotHeld)
	err := within(e.t, patience, "Extend of an expired holding", func() error { return h.Extend(e.ctx, time.Minute) })
	requireErr(e.t, err, locker.ErrNotHeld)
	e.release(e.tryLock(lb, key, longLease))
}

// releaseTicketScoped (driver contract): a release scoped to a ticket acts
// only when the latest acquisition of the owner carried that ticket, so
// that undoing an attempt whose reply was lost never undoes another hold
// of the same owner; a repeated attempt with the same ticket does not
// count the hold twice.
func releaseTicketScoped(e *env) {
	c := e.client()
	l := e.locker(c, locker.Options[string]{})
	name, owner := e.name(l, "ticket-scoped"), locker.NewOwner()
	first, second := token.New(), token.New()
	type reply struct {
		res       driver.AcquireResult
		held      bool
		remaining int
		err       error
	}
	acquire := func(ticket string) driver.AcquireResult {
		e.t.Helper()
		r := within(e.t, patience, "Backend.Acquire", func() reply {
			res, err := c.Backend.Acquire(e.ctx, driver.AcquireRequest{Name: name, Owner: owner, Ticket: ticket, Lease: longLease})
			return reply{res: res, err: err}
		})
		require.NoError(e.t, r.err, "Backend.Acquire")
		require.True(e.t, r.res.Acquired, "Backend.Acquire by the holder (a re-entry)")
		return r.res
	}
	release := func(ticket string) (bool, int) {
		e.t.Helper()
		r := within(e.t, patience, "Backend.Release", func() reply {
			held, n, err := c.Backend.Release(e.ctx, name, owner, ticket)
			return reply{held: held, remaining: n, err: err}
		})
		require.NoError(e.t, r.err, "Backend.Release(ticket %q)", ticket)
		return r.held, r.remaining
	}
	require.Equal(e.t, 1, acquire(first).Count)
	require.Equal(e.t, 2, acquire(second).Count, "a re-entry with a new ticket")
	require.Equal(e.t, 2, acquire(second).Count, "an attempt repeated with the same ticket counted the hold twice")

	for _, stale := range []string{first, token.New()} {
		held, _ := release(stale)
		require.False(e.t, held, "a release scoped to a ticket that is not the owner's latest acquisition reported held")
		e.checkState(c, name, owner, 2)
	}
	held, remaining := release(second)
	require.True(e.t, held, "a release scoped to the ticket of the latest acquisition")
	require.Equal(e.t, 1, remaining, "hold count left after the release scoped to the latest acquisition's ticket")
	e.checkState(c, name, owner, 1)
	held, remaining = release("")
	require.True(e.t, held)
	require.Zero(e.t, remaining)
	e.checkState(c, name, "", 0)
	e.release(e.tryLock(l, "ticket-scoped", longLease)) // free
}
