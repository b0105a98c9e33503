package conformance

import (
	"fmt"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/fairqueue"
	"github.com/disgolock/disgo/locker"
)

// Timings of the Stall group.
const (
	// stallTimeout is the RequestTimeout of the Lockers of stalled clients:
	// longer than any stall, so that a call held back is late, not failed.
	stallTimeout = 5 * time.Second
	// stallWaiterTTL is the waiter TTL of the Stall group: a heartbeat
	// every 200 ms, an eviction bound of 800 ms.
	stallWaiterTTL = 600 * time.Millisecond
	// stallWatch is how long a resumed client is watched for a call that
	// returns a lock it must not have.
	stallWatch = 500 * time.Millisecond
	// staleGrantRounds is the number of rounds of Stall/StaleGrant.
	staleGrantRounds = 3
)

// stallOptions are the Options of the Lockers of the Stall group.
func stallOptions() locker.Options[string] {
	return locker.Options[string]{WaiterTTL: stallWaiterTTL, RequestTimeout: stallTimeout}
}

// staleGrant: the stale-grant case of a process pause. A fair waiter is
// stalled as the holder releases: a store that grants directly hands it
// the lock with the lease min(lease, WaiterTTL), which lapses while it is
// stalled, so that the waiter queued behind it acquires. When the stalled
// waiter resumes, the grant message and the replies it was held back from
// arrive late: its Lock must not return while the other waiter holds the
// lock (nor ever with a fencing token lower than that holder's), and it
// acquires only after that holder released. The lease is no longer than
// the waiter TTL, so the facade could take the grant without a round
// trip: that is where a late grant could be taken for a fresh one.
func staleGrant(e *env) {
	hc, sc, nc := e.client(), e.client(), e.client()
	e.needStall(sc)
	e.needFair(hc)
	o := stallOptions()
	hl, sl, nl := e.locker(hc, o), e.locker(sc, o), e.locker(nc, o)
	lease := shortLease // <= WaiterTTL: the grant lease is the lease itself
	bound := lease + fairqueue.Policy{WaiterTTL: o.WaiterTTL}.EvictionBound() + 2*time.Second
	for round := range staleGrantRounds {
		key := fmt.Sprintf("stale-grant-%d", round)
		name := e.name(hl, key)
		h := e.tryLock(hl, key, longLease)
		stalled := acquiring(func() (*locker.Lock[string], error) {
			return sl.Lock(e.ctx, key, locker.WaitForever, lease)
		})
		e.awaitWaiting(hc, name, 1)
		next := acquiring(func() (*locker.Lock[string], error) {
			return nl.Lock(e.ctx, key, locker.WaitForever, longLease)
		})
		e.awaitWaiting(hc, name, 2)

		resume := e.stall(sc)
		e.release(h)
		if i, ok := inspector(hc); ok && round == 0 {
			if st := e.state(i, name); st.Owner != "" {
				e.t.Logf("the store handed the released lock to the stalled waiter, with %v of lease left", st.TTL)
			}
		}
		r := await(e.t, bound, fmt.Sprintf("round %d: the waiter queued behind a stalled waiter to acquire once the "+
			"stalled waiter's grant (lease %v) could have lapsed", round, lease), next)
		require.NoError(e.t, r.err, "round %d: the waiter behind the stalled one", round)
		select {
		case s := <-stalled:
			e.t.Fatalf("round %d: the stalled waiter's Lock returned while its client was stalled (err %v)", round, s.err)
		default:
		}
		resume()

		// Late replies and a late grant message reach the resumed waiter.
		select {
		case s := <-stalled:
			if s.err == nil {
				e.t.Fatalf("round %d: the resumed waiter's Lock returned a held lock (fencing token %d) while another "+
					"waiter held it (fencing token %d): a stale grant was taken", round, s.lock.Fence(), r.lock.Fence())
			}
			e.t.Fatalf("round %d: the resumed waiter's Lock (WaitForever) returned %v", round, s.err)
		case <-time.After(stallWatch):
		}
		require.NoError(e.t, r.lock.Err(), "round %d: the holder lost the lock when the stalled waiter resumed", round)
		e.checkState(hc, name, r.lock.Owner(), 1)
		e.release(r.lock)

		s := await(e.t, patience, fmt.Sprintf("round %d: the resumed waiter to acquire once the lock was released", round), stalled)
		require.NoError(e.t, s.err, "round %d: the resumed waiter", round)
		require.Greater(e.t, s.lock.Fence(), r.lock.Fence(),
			"round %d: fencing token of the resumed waiter after the holding it waited for", round)
		if err := e.releaseErr(s.lock); err != nil {
			requireErr(e.t, err, locker.ErrNotHeld) // its lease of 300 ms may have run out
		}
		e.checkWaiters(hc, name, 0)
	}
}

// holderPastLease: a holder stalled past its lease, an auto-renewed one and
// one with a fixed lease. Its lease ends in the store, and another client
// acquires while it is stalled; once resumed, the stalled holder's Done is
// closed with ErrLost, its Release says ErrNotHeld and changes nothing, and
// the new holder's fencing token is greater.
func holderPastLease(e *env) {
	ac, bc := e.client(), e.client()
	e.needStall(ac)
	o := stallOptions()
	o.RenewLease = renewLease
	al, bl := e.locker(ac, o), e.locker(bc, o)
	type holding struct {
		h    *locker.Lock[string]
		what string
		next <-chan acq
		r    acq
	}
	// Each holding is taken right before its waiter starts, so that the
	// fixed lease is still running when the waiter queues, however slow
	// the first set-up was.
	const fixedLease = time.Second
	take := []func() *holding{
		func() *holding {
			return &holding{h: e.renewed(al, "stalled-renewed", 0), what: fmt.Sprintf("auto-renewed, RenewLease %v", renewLease)}
		},
		func() *holding {
			return &holding{h: e.tryLock(al, "stalled-fixed", fixedLease), what: fmt.Sprintf("fixed lease of %v", fixedLease)}
		},
	}
	var holdings []*holding
	for _, t := range take {
		x := t()
		key := x.h.Key()
		x.next = acquiring(func() (*locker.Lock[string], error) {
			return bl.Lock(e.ctx, key, locker.WaitForever, longLease)
		})
		e.awaitWaiting(bc, x.h.Name(), 1)
		holdings = append(holdings, x)
	}

	resume := e.stall(ac)
	for _, x := range holdings {
		x.r = await(e.t, max(renewLease, fixedLease)+2*time.Second,
			fmt.Sprintf("another client to acquire once the lease (%s) of a stalled holder ran out", x.what), x.next)
		require.NoError(e.t, x.r.err)
	}
	resume()
	for _, x := range holdings {
		awaitClosed(e.t, patience, fmt.Sprintf("Done of the stalled holder (%s) to close once it resumed", x.what), x.h.Done())
		require.ErrorIs(e.t, x.h.Err(), locker.ErrLost, "Err of the stalled holder (%s)", x.what)
		requireErr(e.t, e.releaseErr(x.h), locker.ErrNotHeld)
		n := x.r.lock
		require.Greater(e.t, n.Fence(), x.h.Fence(), "fencing token of the holder after a stalled holder (%s)", x.what)
		require.NoError(e.t, n.Err(), "the new holder lost the lock when the stalled holder (%s) resumed", x.what)
		e.checkState(bc, n.Name(), n.Owner(), 1)
		e.release(n)
	}
}

// waiterPastHeartbeat: a fair waiter at the head of the queue is stalled
// past its heartbeat deadline. It is evicted, and the waiter behind it
// gets the lock within fairqueue.Policy.EvictionBound (plus a margin) of
// the stall. A newcomer queues meanwhile. Once resumed, the stalled
// waiter's late attempt does not get the lock while the other holds it,
// nor its old place back: it gets the lock after the newcomer.
func waiterPastHeartbeat(e *env) {
	hc, sc, nc, lc := e.client(), e.client(), e.client(), e.client()
	e.needStall(sc)
	e.needFair(hc)
	o := stallOptions()
	policy := fairqueue.Policy{WaiterTTL: o.WaiterTTL}
	hl, sl, nl, ll := e.locker(hc, o), e.locker(sc, o), e.locker(nc, o), e.locker(lc, o)
	const key = "stalled-waiter"
	name := e.name(hl, key)
	h := e.tryLock(hl, key, longLease)
	stalled := acquiring(func() (*locker.Lock[string], error) {
		return sl.Lock(e.ctx, key, locker.WaitForever, longLease)
	})
	e.awaitWaiting(hc, name, 1)
	next := acquiring(func() (*locker.Lock[string], error) {
		return nl.Lock(e.ctx, key, locker.WaitForever, longLease)
	})
	e.awaitWaiting(hc, name, 2)

	resume := e.stall(sc)
	stalledAt := time.Now()
	time.Sleep(policy.TTL() + policy.Heartbeat()/2) // past the stalled waiter's heartbeat deadline
	e.release(h)
	bound := policy.EvictionBound() + 2*time.Second
	r := await(e.t, time.Until(stalledAt.Add(bound)), fmt.Sprintf("the waiter queued behind a waiter stalled past its "+
		"heartbeat to acquire (fairqueue.Policy.EvictionBound is %v; the holder released after %v)",
		policy.EvictionBound(), policy.TTL()+policy.Heartbeat()/2), next)
	require.NoError(e.t, r.err)
	require.Greater(e.t, r.lock.Fence(), h.Fence(), "fencing token of the waiter that acquired after the released holding")

	late := acquiring(func() (*locker.Lock[string], error) {
		return ll.Lock(e.ctx, key, locker.WaitForever, longLease)
	})
	e.awaitWaiting(hc, name, 1)
	resume()
	select {
	case s := <-stalled:
		e.t.Fatalf("the resumed waiter's Lock returned (err %v) while another waiter held the lock", s.err)
	case l := <-late:
		e.t.Fatalf("the newcomer's Lock returned (err %v) while another waiter held the lock", l.err)
	case <-time.After(stallWatch):
	}
	require.NoError(e.t, r.lock.Err(), "the holder lost the lock when the stalled waiter resumed")
	e.checkState(hc, name, r.lock.Owner(), 1)
	e.release(r.lock)

	l := await(e.t, patience, "the newcomer, queued while the stalled waiter was evicted, to acquire", late)
	require.NoError(e.t, l.err)
	select {
	case s := <-stalled:
		e.t.Fatalf("the resumed waiter's Lock returned (err %v) while the newcomer held the lock: it kept its place", s.err)
	default:
	}
	e.release(l.lock)
	s := await(e.t, patience, "the resumed waiter to acquire at last", stalled)
	require.NoError(e.t, s.err)
	require.Greater(e.t, s.lock.Fence(), l.lock.Fence())
	e.release(s.lock)
	e.checkWaiters(hc, name, 0)
}
