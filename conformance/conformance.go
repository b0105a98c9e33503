package conformance

import (
	"context"
	"testing"

	"github.com/disgolock/disgo/locker"
	"github.com/disgolock/disgo/locker/driver"
)

// Harness describes one store under test. All clients it makes share one
// store. Only NewClient is required; every optional hook enables more
// subtests (see [Run]).
type Harness struct {
	// NewClient returns a new independent client on the shared store, like
	// a separate process with its own connections. It registers its own
	// cleanup with t.Cleanup. Required.
	NewClient func(t testing.TB) Client
	// Keys lists the keys the store holds for lock names containing substr,
	// apart from the fence records that fencing needs to outlive a lock.
	// Optional: enables the "no keys left behind" (also by a waiter that
	// died) and "bad input writes nothing" checks.
	Keys func(ctx context.Context, substr string) ([]string, error)
	// Wipe deletes every record of lock name (lock state, fence record,
	// queue), as an eviction or an operator would. Optional: enables
	// loss-on-delete, loss-on-steal and fencing-across-eviction tests.
	Wipe func(ctx context.Context, name string) error
}

// Client is one "process".
type Client struct {
	// Backend is the driver. driver.Notifier and the optional
	// capabilities (driver.Queue, driver.Inspector, driver.BatchExtender)
	// are found on it by type assertion.
	Backend driver.Backend
	// Subscriptions returns how many lock names the client's Notifier
	// holds a store subscription for right now (a name counts once however
	// many waiters share it). Optional: enables the subscription-leak check
	// (Leaks/Subscriptions), and lets barging tests wait until a waiter
	// subscribed instead of sleeping.
	Subscriptions func() int
	// Kill cuts the client off the store at once, as if its process died:
	// every later call of this client fails and its subscriptions stop.
	// Cut the calls off first: stopping subscriptions usually wakes their
	// waiters, and a call one of them makes before the connection closes
	// would still reach the store. Optional: enables the tests of dead
	// waiters and dead holders.
	Kill func()
	// Stall stalls the client as a process pause would (SIGSTOP, a long GC
	// pause, a VM freeze) until the returned resume is called. While
	// stalled, its calls and its wake-ups are held back: a call made while
	// stalled blocks (it does not fail) until resume, unless its ctx ends
	// first; a message published to its subscriptions does not signal Wake
	// nor change what a driver.Subscription reports. On resume they are
	// delivered, late, in their original order (a release held back before
	// a grant message reaches the store before the message is seen, and so
	// on). Everything else of the process goes on: its timers fire, and
	// the calls they make are held back too. resume must be safe to call
	// more than once and from any goroutine, and should return once what
	// was held back is on its way. Keep the driver's own timeouts longer
	// than a stall of a few seconds, so that a held call is late, not
	// failed (the suite's Lockers use a RequestTimeout of at least 5 s in
	// these tests). A TCP proxy in front of the store that pauses the
	// client's connections does it for a networked store. Optional:
	// enables the Stall group.
	Stall func() (resume func())
}

// test is one subtest of the suite.
type test struct {
	name string
	run  func(e *env)
	// modes runs the test twice, as <name>/Fair and <name>/Barging.
	modes bool
	// serial keeps the test off t.Parallel (leak checks count process-wide).
	serial bool
}

// group is a named set of subtests; groups run one after another, the
// tests of a group in parallel.
type group struct {
	name  string
	tests []test
}

// suite lists every subtest. Names are stable: users select them with -run.
var suite = []group{
	{"MutualExclusion", []test{
		{name: "Fair", run: func(e *env) { hammer(e, locker.Fair) }},
		{name: "Barging", run: func(e *env) { hammer(e, locker.Barging) }},
		{name: "TryLockTaken", run: tryLockTaken, modes: true},
	}},
	{"Reentrancy", []test{
		{name: "CountsUpAndDown", run: reentrancyCounts, modes: true},
		{name: "DistinctHandlesDistinctOwners", run: distinctOwners},
		{name: "SharedOwnerToken", run: sharedOwner},
		{name: "NeverShortensLease", run: reentryNeverShortens, modes: true},
	}},
	{"Fairness", []test{
		{name: "ArrivalOrder", run: arrivalOrder},
		{name: "DepartingWaiterKeepsOrder", run: departingWaiter},
		{name: "OrderAtHeadAndTail", run: orderAtHeadAndTail},
		{name: "DeadWaiterEvicted", run: deadWaiter},
		{name: "DeadHeadSkipped", run: deadHeadSkipped},
		{name: "KilledWaiterLeavesNoKeys", run: killedWaiterKeys},
		{name: "WokenAfterHeadLeft", run: wokenAfterHeadLeft},
		{name: "WakeUpsToOwnProcess", run: wakeUpsToOwnProcess},
		{name: "GrantMessageLost", run: grantMessageLost},
		{name: "GrantToDeadWaiter", run: grantToDeadWaiter},
		{name: "GiveUpRacingRelease", run: giveUpRacingRelease},
	}},
	{"Spin", []test{
		{name: "WokenByRelease", run: wokenByRelease, modes: true},
		{name: "WokenByExpiry", run: wokenByExpiry, modes: true},
		{name: "WokenByHolderDeath", run: wokenByHolderDeath, modes: true},
		{name: "WaitElapsed", run: waitElapsed, modes: true},
		{name: "ContextCancelled", run: contextCancelled, modes: true},
	}},
	{"Renewal", []test{
		{name: "HeldAcrossLeases", run: heldAcrossLeases},
		{name: "ExtendFixedLease", run: extendFixedLease},
		{name: "LossOnDelete", run: lossOnDelete},
		{name: "LossOnSteal", run: lossOnSteal},
		{name: "LossWhenCutOff", run: lossWhenCutOff},
		{name: "NothingRenewedAfterRelease", run: nothingRenewedAfterRelease},
		{name: "ExtendedLeaseLength", run: extendedLeaseLength},
		{name: "KilledHolderFreed", run: killedHolderFreed},
		{name: "DeadlineBeforeRequest", run: deadlineBeforeRequest, modes: true},
	}},
	{"MultiLock", []test{
		{name: "AllOrNothing", run: multiAllOrNothing, modes: true},
		{name: "NoDeadlock", run: multiNoDeadlock, modes: true},
		{name: "OneLossSignal", run: multiOneLossSignal, modes: true},
		{name: "BadInput", run: multiBadInput},
		{name: "AtomicStep", run: multiAtomic, modes: true},
	}},
	{"ForceRelease", []test{
		{name: "RevokesTheHolder", run: forceReleaseRevokesTheHolder, modes: true},
		{name: "WholeHolding", run: forceReleaseWholeHolding, modes: true},
		{name: "ThroughTheHoldingLocker", run: forceReleaseThroughTheHoldingLocker},
		{name: "ExtendSaysRevoked", run: forceReleaseExtendSaysRevoked},
	}},
	{"Fencing", []test{
		{name: "Increasing", run: fencingIncreasing},
		{name: "AcrossExpiry", run: fencingAcrossExpiry},
		{name: "AcrossEviction", run: fencingAcrossEviction},
		{name: "KeptByReentry", run: fencingKeptByReentry},
	}},
	{"Release", []test{
		{name: "ByNonHolder", run: releaseByNonHolder},
		{name: "Double", run: releaseDouble},
		{name: "AfterExpiry", run: releaseAfterExpiry},
		{name: "TicketScoped", run: releaseTicketScoped},
	}},
	{"Stall", []test{
		{name: "StaleGrant", run: staleGrant},
		{name: "HolderPastLease", run: holderPastLease},
		{name: "WaiterPastHeartbeat", run: waiterPastHeartbeat},
	}},
	{"BadInput", []test{
		{name: "EmptyName", run: badEmptyName},
		{name: "OversizedName", run: badOversizedName},
		{name: "Lease", run: badLease},
		{name: "NegativeWait", run: badNegativeWait},
		{name: "CancelledContext", run: badCancelledContext},
		{name: "Owner", run: badOwner},
		{name: "NilBackend", run: badNilBackend},
		{name: "Options", run: badOptions},
		{name: "FairWithoutQueue", run: badFairWithoutQueue},
		{name: "NothingWritten", run: badNothingWritten},
	}},
	{"RWLock", []test{
		{name: "ReadersShare", run: rwReadersShare, modes: true},
		{name: "Exclusion", run: rwHammer, modes: true},
		{name: "ReadReentrant", run: rwReentrant(false), modes: true},
		{name: "WriteReentrant", run: rwReentrant(true), modes: true},
		{name: "WriteHolderTakesRead", run: rwWriteHolderTakesRead, modes: true},
		{name: "Downgrade", run: rwDowngrade, modes: true},
		{name: "NoUpgrade", run: rwNoUpgrade, modes: true},
		{name: "FairOrder", run: rwFairOrder},
		{name: "WriterNotStarved", run: rwWriterNotStarved},
		{name: "WaiterLeaves", run: rwWaiterLeaves},
		{name: "DeadReaderExpires", run: rwDeadReaderExpires, modes: true},
		{name: "Fencing", run: rwFencing},
		{name: "ForceRelease", run: rwForceRelease, modes: true},
		{name: "TicketScoped", run: rwTicketScoped},
		{name: "ApartFromOtherKinds", run: kindsApart(false)},
		{name: "BadInput", run: rwBadInput},
		{name: "NoKeysLeft", run: rwNoKeysLeft},
		{name: "NoSubscriptionsLeft", run: rwNoSubscriptionsLeft},
	}},
	{"Semaphore", []test{
		{name: "PermitsShared", run: semPermitsShared, modes: true},
		{name: "Exclusion", run: semHammer, modes: true},
		{name: "Reentrancy", run: semReentrancy, modes: true},
		{name: "LimitMismatch", run: semLimitMismatch, modes: true},
		{name: "LimitKeptByWaiters", run: semLimitKeptByWaiters},
		{name: "FIFO", run: semFIFO},
		{name: "LargeNotStarved", run: semLargeNotStarved},
		{name: "WaiterLeaves", run: semWaiterLeaves},
		{name: "DeadHolderExpires", run: semDeadHolderExpires, modes: true},
		{name: "Fencing", run: semFencing},
		{name: "ForceRelease", run: semForceRelease, modes: true},
		{name: "TicketScoped", run: semTicketScoped},
		{name: "ApartFromOtherKinds", run: kindsApart(true)},
		{name: "BadInput", run: semBadInput},
		{name: "NoKeysLeft", run: semNoKeysLeft},
		{name: "NoSubscriptionsLeft", run: semNoSubscriptionsLeft},
	}},
	{"Leaks", []test{
		{name: "Goroutines", run: leakGoroutines, serial: true},
		{name: "Subscriptions", run: leakSubscriptions, serial: true},
		{name: "Keys", run: leakKeys, serial: true},
	}},
}

// Run runs the conformance suite against the store h describes, as
// subtests of t named "<Group>/<Test>" (plus "/Fair" and "/Barging" for
// tests that run in both modes), for example "Reentrancy/CountsUpAndDown"
// or "Spin/WokenByRelease/Fair". The names are stable; select some with
// go test -run 'Conformance/Spin/'.
//
// Groups run one after another; the subtests of a group run in parallel,
// except the Leaks group, which runs alone at the end. The RWLock and
// Semaphore groups need a Backend that implements [driver.RWLocker] and
// [driver.Semaphorer]; without, each of their subtests is skipped with a
// message naming the missing capability. Every subtest uses
// its own random [locker.Options.Namespace], short explicit timings, and
// bounds every wait: it fails with "timed out waiting for ..." instead of
// hanging. The whole suite takes about twenty seconds.
//
// Hooks and capabilities enable subtests. When one is missing, the
// subtests that need it call t.Skipf naming the missing piece, so that a
// gap never passes silently:
//
//   - a Backend that implements [driver.Queue]: every Fair subtest, the
//     Fairness group;
//   - a Backend that implements [driver.Notifier]: Spin/WokenByRelease,
//     Fairness/WokenAfterHeadLeft and Fairness/WakeUpsToOwnProcess
//     (without one, waiters only re-check on a timer, which those tests
//     rule out) and Leaks/Subscriptions;
//   - Client.Subscriptions: Leaks/Subscriptions;
//   - Client.Kill: Fairness/DeadWaiterEvicted, Fairness/GrantToDeadWaiter,
//     Fairness/DeadHeadSkipped, Fairness/KilledWaiterLeavesNoKeys,
//     Spin/WokenByHolderDeath, Renewal/LossWhenCutOff,
//     Renewal/KilledHolderFreed;
//   - Harness.Wipe: Renewal/LossOnDelete, Renewal/LossOnSteal,
//     Fencing/AcrossEviction;
//   - Client.Stall: the Stall group (a stalled waiter handed a grant that
//     lapses, a holder stalled past its lease, a waiter stalled past its
//     heartbeat);
//   - Harness.Keys: Leaks/Keys, BadInput/NothingWritten,
//     Fairness/KilledWaiterLeavesNoKeys, RWLock/NoKeysLeft,
//     Semaphore/NoKeysLeft (and the "nothing written" checks of
//     RWLock/BadInput and Semaphore/BadInput);
//   - a Backend that implements [driver.RWLocker]: the RWLock group
//     (read-write locks through locker.NewRW), and a Backend that
//     implements [driver.Semaphorer]: the Semaphore group (counting
//     semaphores through locker.NewSemaphore). Their views need what the
//     mutex tests need (a Queue for fair mode, a Notifier, an Inspector
//     for closer checks, a ForceReleaser for RWLock/ForceRelease and
//     Semaphore/ForceRelease); Client.Kill enables
//     RWLock/DeadReaderExpires and Semaphore/DeadHolderExpires.
//
// A Backend that implements [driver.Inspector] is checked more closely
// (holders, hold counts, queue lengths); the fairness tests then observe
// each waiter's registration instead of relying on a stagger between
// starts.
//
// The Fairness group also covers a store that hands a released lock
// straight to the head of its queue ([driver.Subscription].Granted): a grant whose
// message is lost (Fairness/GrantMessageLost), a grant to a waiter that
// died (Fairness/GrantToDeadWaiter) and a grant to a waiter that is giving
// up (Fairness/GiveUpRacingRelease). They check outcomes only, so a store
// that merely wakes the head passes them too. The queue's order at the
// head and at the tail (Fairness/OrderAtHeadAndTail), the wake-up of the
// next waiter after a head that left (Fairness/WokenAfterHeadLeft) or that
// died and lapsed (Fairness/DeadHeadSkipped), and wake-ups that reach only
// the process they are for (Fairness/WakeUpsToOwnProcess) are checked with
// waiters that would not re-check on their own for seconds, so that a
// missing or misdirected wake-up shows.
//
// The RWLock group checks read-write locks: readers share, a writer
// excludes readers and writers (a hammer of several clients in both
// modes), reentrancy of each side, a write holder taking the read lock and
// downgrading, an upgrade refused at once with locker.ErrUpgrade changing
// nothing, the one FIFO queue of readers and writers in fair mode (a
// waiting writer blocks later readers, readers at the head are admitted
// together, a writer is not starved by a stream of readers, readers behind
// a writer that left are admitted), a dead reader's share ending with its
// lease, fencing tokens from one counter per key, a force release ending
// every holding, and no keys or subscriptions left behind. The Semaphore
// group checks counting semaphores: permits in use never exceed the limit
// (a hammer of random sizes, also as inspected), reentrancy keeping the
// permits, locker.ErrMismatch for another limit or number of permits,
// FIFO admission so that a large request is not starved, a dead holder's
// permits coming back with its lease, fencing, force release, and no keys
// or subscriptions left behind. Both check that bad input
// (locker.WithPermits on a read-write lock, permits out of range) is an
// ArgumentError that writes nothing, and that the mutex, read-write lock
// and semaphore of a key are three locks.
//
// Some checks are of the driver contracts themselves, where the facade
// cannot show a fault: Release/TicketScoped, RWLock/TicketScoped and
// Semaphore/TicketScoped (a release scoped to a stale ticket changes
// nothing; the read and write holds of one owner are two holdings), the
// "not acquired" Fence of RWLock/Fencing and Semaphore/Fencing, and the
// driver errors of RWLock/NoUpgrade and Semaphore/LimitMismatch. Renewal/DeadlineBeforeRequest checks the
// facade's own deadlines against a backend whose replies come late, and
// that no store lease ends before the holder's Lock.Deadline().
//
// Leaks/Goroutines compares the goroutines of the whole process before and
// after its own work, so the test that calls Run must not run in parallel
// with other tests of its package.
func Run(t *testing.T, h Harness) {
	if h.NewClient == nil {
		t.Fatal("conformance: Harness.NewClient is required")
	}
	for _, g := range suite {
		t.Run(g.name, func(t *testing.T) {
			for _, tc := range g.tests {
				t.Run(tc.name, func(t *testing.T) {
					if !tc.serial {
						t.Parallel()
					}
					if !tc.modes {
						tc.run(newEnv(t, h, nil))
						return
					}
					for _, m := range []locker.Mode{locker.Fair, locker.Barging} {
						t.Run(modeName(m), func(t *testing.T) {
							t.Parallel()
							tc.run(newEnv(t, h, &m))
						})
					}
				})
			}
		})
	}
}

func modeName(m locker.Mode) string {
	if m == locker.Fair {
		return "Fair"
	}
	return "Barging"
}
