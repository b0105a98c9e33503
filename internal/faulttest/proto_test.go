//go:build linux

package faulttest

import (
	"context"
	"errors"
	"time"

	"golang.org/x/sys/unix"

	"github.com/disgolock/disgo/locker"
)

// workerEnv is the environment variable that turns the test binary into a
// worker; its value is the worker's configuration as JSON.
const workerEnv = "DISGO_FAULTTEST_WORKER"

// workerConfig configures one worker process: its store and its Locker.
type workerConfig struct {
	Name    string `json:"name"`
	Adapter string `json:"adapter"` // "goredis" or "rueidis"
	Addr    string `json:"addr"`    // Redis, or a proxy in front of it
	Mode    string `json:"mode"`    // "fair" or "barging"

	RenewLease       time.Duration `json:"renew_lease"`
	WaiterTTL        time.Duration `json:"waiter_ttl"`
	FallbackInterval time.Duration `json:"fallback_interval"`
	RequestTimeout   time.Duration `json:"request_timeout"`

	// Kind adds a Locker of another kind of lock, besides the mutex Locker
	// every worker has: "rw" a read-write Locker (locker.NewRW), "sem" a
	// semaphore Locker (locker.NewSemaphore) of Limit permits.
	Kind  string `json:"kind,omitempty"`
	Limit int    `json:"limit,omitempty"`
}

// Kinds of lock a worker can take (workerConfig.Kind).
const (
	mutexLock = ""    // the mutex Locker, always there
	rwLock    = "rw"  // command.Side says which side
	semLock   = "sem" // command.Permits says how many permits
)

// command is one line the coordinator sends to a worker.
type command struct {
	ID     int64         `json:"id"`
	Op     string        `json:"op"` // lock, release, write, fence, owner, ping, exit
	Name   string        `json:"name,omitempty"`
	Handle string        `json:"handle,omitempty"` // the coordinator's name for a held lock
	Wait   time.Duration `json:"wait,omitempty"`
	Lease  time.Duration `json:"lease,omitempty"` // lock: 0 = LockWithRenewal

	// Kind is the kind of lock of a lock command (see workerConfig.Kind);
	// Side is "read" or "write" for rwLock, Permits the permits for
	// semLock (0 = the default, 1).
	Kind    string `json:"kind,omitempty"`
	Side    string `json:"side,omitempty"`
	Permits int    `json:"permits,omitempty"`
}

// event is one line a worker reports. T is CLOCK_MONOTONIC in ns.
type event struct {
	Ev     string `json:"ev"` // ready, invoke, return, done, deadline
	ID     int64  `json:"id,omitempty"`
	Op     string `json:"op,omitempty"`
	Handle string `json:"handle,omitempty"`
	T      int64  `json:"t"`

	OK       bool     `json:"ok,omitempty"`
	Err      string   `json:"err,omitempty"`
	Kinds    []string `json:"kinds,omitempty"` // the sentinels err matches, see classify
	Fence    int64    `json:"fence,omitempty"`
	Owner    string   `json:"owner,omitempty"`
	Deadline int64    `json:"deadline,omitempty"` // lease deadline as the worker knows it, on the shared clock
	Accepted bool     `json:"accepted,omitempty"` // write: the fenced resource took it
	PID      int      `json:"pid,omitempty"`
}

// mono reads CLOCK_MONOTONIC, the clock all processes of the machine
// share, in ns. It keeps counting while a process is stopped.
func mono() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic(err)
	}
	return ts.Nano()
}

// monoOf converts a time of this process (with its monotonic reading) to
// the shared clock.
func monoOf(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return mono() + int64(time.Until(t))
}

// Kinds of errors, as reported in event.Kinds.
const (
	kindNotObtained = "notobtained"
	kindNotHeld     = "notheld"
	kindLost        = "lost"
	kindRevoked     = "revoked"
	kindReleased    = "released"
	kindBackend     = "backend"
	kindClosed      = "closed"
	kindCanceled    = "canceled"
	kindDeadline    = "deadline"
	kindInvalid     = "invalid"
	kindNoHandle    = "nohandle" // the worker has no lock of that handle
	kindExited      = "exited"   // set by the coordinator: the worker died before replying
)

// classify lists the sentinels err matches with errors.Is.
func classify(err error) []string {
	if err == nil {
		return nil
	}
	var kinds []string
	for _, k := range []struct {
		name string
		err  error
	}{
		{kindNotObtained, locker.ErrNotObtained},
		{kindNotHeld, locker.ErrNotHeld},
		{kindLost, locker.ErrLost},
		{kindRevoked, locker.ErrRevoked},
		{kindReleased, locker.ErrReleased},
		{kindBackend, locker.ErrBackend},
		{kindClosed, locker.ErrClosed},
		{kindCanceled, context.Canceled},
		{kindDeadline, context.DeadlineExceeded},
		{kindInvalid, locker.ErrInvalidArgument},
	} {
		if errors.Is(err, k.err) {
			kinds = append(kinds, k.name)
		}
	}
	if len(kinds) == 0 {
		kinds = []string{"other"}
	}
	return kinds
}

// has reports whether kinds contains k.
func has(kinds []string, k string) bool {
	for _, x := range kinds {
		if x == k {
			return true
		}
	}
	return false
}

// resourceKey is the key of the fenced resource guarded by the lock name:
// a separate key the lock never touches, in the name's hash slot.
func resourceKey(name string) string { return "faulttest:{" + name + "}:resource" }

// fencedWrite is the fenced resource: it takes a write only with a token
// not lower than every token it took before (re-writes by the same holder
// pass). Tokens are compared as decimal strings, exactly, whatever their
// size. Reply: 1 accepted, 0 rejected.
const fencedWrite = `
local cur = redis.call('GET', KEYS[1])
local f = ARGV[1]
if cur and (#cur > #f or (#cur == #f and cur > f)) then
  return 0
end
redis.call('SET', KEYS[1], f)
return 1
`
