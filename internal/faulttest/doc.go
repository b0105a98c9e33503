// Package faulttest is disgo's process-level fault suite. It has no API:
// everything is in its tests, which run the lock under real process faults.
//
// Workers are separate OS processes: the test binary re-executed with the
// environment variable DISGO_FAULTTEST_WORKER set (see TestMain). Each holds
// one locker.Locker on one of the Redis adapters (and, when configured, a
// read-write Locker or a semaphore Locker besides) and takes commands from
// the coordinator (the test) as JSON lines on stdin: lock, release, a fenced
// write, fence, owner, ping, exit. It reports what happened as JSON lines
// on stdout, with timestamps of CLOCK_MONOTONIC, the one clock every
// process on the machine shares, so that the coordinator can put the
// events of all processes on one time line.
//
// The coordinator starts its own redis-server processes (package
// redistest), stops, kills and resumes workers (SIGSTOP, SIGCONT, kill -9),
// kills and restarts Redis, pauses it (CLIENT PAUSE), kills its pub/sub
// connections (CLIENT KILL TYPE pubsub), puts a lossy TCP proxy (package
// tcpproxy) in front of one worker, and checks what the workers saw:
// mutual exclusion, fencing, loss signals, bounds on stalls, and the
// linearizability of a history of acquisitions and releases against a
// mutex model (github.com/anishathalye/porcupine), or, for read-write locks
// and semaphores, a model of shared holds (readers together or one writer;
// holdings whose permits sum to at most the limit) with the same check
// over the holds' protected intervals.
//
// Run it with
//
//	go test -race -v ./internal/faulttest/
//
// and one scenario with, for example,
//
//	go test -race -v -run 'TestFaults/goredis/Fair/FairWaiterStoppedPastGrant' ./internal/faulttest/
//
// The flag -faulttest.soak (or DISGO_FAULTTEST_SOAK=1) runs more trials and
// longer workloads. Every measured figure is logged with t.Logf.
package faulttest
