// Package conformance is the importable test suite that proves a disgo
// backend correct, in the manner of testing/fstest.TestFS and
// x/net/nettest.TestConn. The suite drives the backend through the facade
// (package locker), as a user would, from several independent clients of
// one store, and checks the behaviour contract: mutual exclusion,
// reentrancy, FIFO fairness (also when a store hands a released lock
// straight to the head of its queue and that head missed the message,
// died, or is giving up; the order at the head and at the tail; wake-ups
// that reach only the process they are for), spin waiting, renewal and
// loss signals, lease lengths and deadlines, fencing tokens, lease expiry,
// release by non-holders and by stale tickets, stalled processes (a
// waiter handed a grant it sees only after the grant lapsed, a holder or
// waiter paused past its lease or heartbeat), rejection of bad input, and
// no leaked goroutines, subscriptions or keys, also after a waiter died.
// For a backend with read-write locks (driver.RWLocker) or counting
// semaphores (driver.Semaphorer) it checks those kinds too, through
// locker.NewRW and locker.NewSemaphore.
//
// The groups, in the order they run: MutualExclusion, Reentrancy,
// Fairness, Spin, Renewal, MultiLock, ForceRelease, Fencing, Release,
// Stall, BadInput, RWLock, Semaphore, Leaks.
//
// # Plugging in a backend
//
// Implement [driver.Backend] (and, for more of the contract, [driver.Queue],
// [driver.Notifier], [driver.Inspector], driver.BatchExtender,
// driver.ForceReleaser, driver.RWLocker and driver.Semaphorer on the same
// type), then call [Run] from a test in your package:
//
//	func TestConformance(t *testing.T) {
//		store := startMyStore(t) // one store shared by all clients
//		conformance.Run(t, conformance.Harness{
//			NewClient: func(t testing.TB) conformance.Client {
//				c := mybackend.New(store.Addr()) // its own connections, like a separate process
//				t.Cleanup(func() { c.Close() })
//				return conformance.Client{Backend: c, Kill: c.Disconnect, Stall: c.Pause,
//					Subscriptions: c.SubscribedNames} // Kill, Stall, Subscriptions: optional
//			},
//			Keys: store.KeysContaining, // optional
//			Wipe: store.DeleteLock,     // optional
//		})
//	}
//
// NewClient must return a client that behaves like a separate process on
// the shared store: its own connections and its own subscriptions. The
// optional hooks unlock more of the suite:
//
//   - Client.Kill cuts the client off at once (every later call fails, its
//     subscriptions stop), as if its process died: dead waiters and dead
//     holders are tested.
//   - Client.Stall stalls the client as a process pause would (SIGSTOP, a
//     GC pause, a VM freeze) until the resume function it returns is
//     called: while stalled its calls block (they do not fail, unless their
//     ctx ends) and its wake-ups are held back; on resume they are
//     delivered late, in their original order. The Stall group is tested:
//     a stalled waiter whose grant lapsed and went to the next waiter, a
//     holder stalled past its lease, a waiter stalled past its heartbeat.
//     For a networked store, a TCP proxy per client that holds the bytes
//     (internal/tcpproxy in this repository) does it; keep the driver's
//     timeouts longer than a few seconds so that held calls are late, not
//     failed.
//   - Harness.Wipe deletes every record of a lock name, as an eviction or an
//     operator would: loss detection and fencing across eviction are tested.
//   - Harness.Keys lists the keys held for lock names containing a
//     substring, fence records excepted: "nothing left behind" and "bad
//     input writes nothing" are tested.
//   - Client.Subscriptions counts the store subscriptions a client holds,
//     per lock name: subscriptions left behind are detected.
//
// # Running it
//
// Run the suite with the race detector:
//
//	go test -race -run Conformance ./mybackend/
//
// Subtests have stable names, "<Group>/<Test>", with "/Fair" and
// "/Barging" for those run in both modes, so a part can be selected:
//
//	go test -race -run 'Conformance/Fairness/' ./mybackend/
//	go test -race -run 'Conformance/Spin/WokenByRelease/Fair' ./mybackend/
//	go test -race -run 'Conformance/(RWLock|Semaphore)/' ./mybackend/
//
// A subtest whose hook or capability is missing is skipped with a message
// naming it, so a gap is visible in -v output rather than passing silently
// (a backend without read-write locks, for example, skips every RWLock
// subtest with "does not implement driver.RWLocker").
// Every wait is bounded: a broken backend fails with "timed out waiting for
// ..." instead of hanging the test binary. The suite takes about twenty
// seconds: groups run one after another, the subtests of a group in
// parallel, each in its own random namespace with short timings
// (leases of a few hundred milliseconds).
//
// Leaks/Goroutines counts the goroutines of the whole process, so do not
// run the test that calls Run in parallel with other tests of its package.
package conformance
