package conformance_test

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/disgolock/disgo/locker/driver"
)

// Breakages of the read-write locks and semaphores of a memory client,
// for TestBrokenBackends: each view of a broken client is wrapped, and the
// breakage (if it is one of these) applied there.
var kindBreakages = []breakage{
	{"write-is-read", "RWLock/ReadersShare", []string{"RWLock/ReadersShare/Fair", "RWLock/ReadersShare/Barging"}},
	{"upgrade-waits", "RWLock/NoUpgrade", []string{"RWLock/NoUpgrade/Fair", "RWLock/NoUpgrade/Barging"}},
	{"rw-fair-barges", "RWLock/FairOrder", []string{"RWLock/FairOrder"}},
	{"rw-fence-repeats", "RWLock/Fencing", []string{"RWLock/Fencing"}},
	{"rw-force-release-write-only", "RWLock/ForceRelease", []string{"RWLock/ForceRelease/Fair", "RWLock/ForceRelease/Barging"}},
	{"sem-limit-ignored", "Semaphore/PermitsShared", []string{"Semaphore/PermitsShared/Fair", "Semaphore/PermitsShared/Barging"}},
	{"sem-fair-barges", "Semaphore/FIFO", []string{"Semaphore/FIFO"}},
	{"sem-mismatch-waits", "Semaphore/LimitMismatch", []string{"Semaphore/LimitMismatch/Fair", "Semaphore/LimitMismatch/Barging"}},
}

func init() { breakages = append(breakages, kindBreakages...) }

// kindViews are the wrapped views of a broken client, made once.
type kindViews struct {
	once                sync.Once
	read, write, sem    driver.Backend
	hasRW, hasSemaphore bool
}

func (b *broken) views() *kindViews {
	v := &b.kv
	v.once.Do(func() {
		if rw, ok := any(b.Client).(driver.RWLocker); ok {
			r, w := rw.RWLocks()
			v.read, v.write, v.hasRW = newBrokenView(b.kind, r, false), newBrokenView(b.kind, w, true), true
			if b.kind == "write-is-read" {
				v.write = v.read // writers take read holds
			}
		}
		if s, ok := any(b.Client).(driver.Semaphorer); ok {
			v.sem, v.hasSemaphore = newBrokenView(b.kind, s.Semaphores(), false), true
		}
	})
	return v
}

// RWLocks returns the wrapped read-write lock views (nil ones when the
// memory client has none: the facade then reports ErrUnsupported).
func (b *broken) RWLocks() (read, write driver.Backend) {
	v := b.views()
	return v.read, v.write
}

// Semaphores returns the wrapped semaphore view.
func (b *broken) Semaphores() driver.Backend { return b.views().sem }

// view is every capability a memory view has.
type view interface {
	driver.Backend
	driver.Queue
	driver.Notifier
	driver.Inspector
	driver.BatchExtender
	driver.ForceReleaser
}

// brokenView is a view of a memory client with one breakage.
type brokenView struct {
	view
	kind  string
	write bool // the write view of a read-write lock
}

func newBrokenView(kind string, b driver.Backend, write bool) driver.Backend {
	v, ok := b.(view)
	if !ok {
		return b // the suite then finds a capability missing, and fails
	}
	return &brokenView{view: v, kind: kind, write: write}
}

func (v *brokenView) Acquire(ctx context.Context, req driver.AcquireRequest) (driver.AcquireResult, error) {
	return v.fix(v.view.Acquire(ctx, v.req(req)))
}

func (v *brokenView) AcquireFair(ctx context.Context, req driver.AcquireRequest, waiterTTL time.Duration) (driver.AcquireResult, error) {
	switch v.kind {
	case "rw-fair-barges", "sem-fair-barges":
		// The queue is ignored: anyone who fits gets in.
		res, err := v.Acquire(ctx, req)
		if err == nil && !res.Acquired {
			res.Position = -1
		}
		return res, err
	}
	return v.fix(v.view.AcquireFair(ctx, v.req(req), waiterTTL))
}

// req applies the request breakages.
func (v *brokenView) req(r driver.AcquireRequest) driver.AcquireRequest {
	if v.kind == "sem-limit-ignored" {
		r.Limit++ // one permit more than declared
	}
	return r
}

// fix applies the reply breakages.
func (v *brokenView) fix(res driver.AcquireResult, err error) (driver.AcquireResult, error) {
	switch {
	case v.kind == "upgrade-waits" && errors.Is(err, driver.ErrUpgrade),
		v.kind == "sem-mismatch-waits" && errors.Is(err, driver.ErrMismatch):
		// "Taken" instead of the refusal: the caller waits.
		return driver.AcquireResult{TTL: -1, Position: -1}, nil
	case v.kind == "rw-fence-repeats" && err == nil && res.Acquired:
		res.Fence = 1
	}
	return res, err
}

// ForceRelease of a read-write lock through its write view ends the write
// hold alone (rw-force-release-write-only): it releases the writer once,
// readers keep their holds.
func (v *brokenView) ForceRelease(ctx context.Context, name string) (bool, error) {
	if v.kind != "rw-force-release-write-only" {
		return v.view.ForceRelease(ctx, name)
	}
	st, err := v.view.Inspect(ctx, name)
	if err != nil {
		return false, err
	}
	if st.Owner == "" {
		return len(st.Holders) > 0, nil // says it freed the readers, but did not
	}
	held, _, err := v.view.Release(ctx, name, st.Owner, "")
	return held, err
}
