// Package killable wraps a lock store for test harnesses so that it can
// be cut off as a dead process is: once killed, every call of the store,
// and of its read-write lock and semaphore views, fails with ErrKilled and
// SubscribeActive finds nothing. A client library that may reconnect after
// it was closed (rueidis does) then still reaches nothing.
package killable

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/disgolock/disgo/locker/driver"
)

// ErrKilled is the error of every call after Kill.
var ErrKilled = errors.New("killable: client killed")

// View is what a store and each of its kind views implement.
type View interface {
	driver.Backend
	driver.Queue
	driver.Notifier
	driver.Inspector
	driver.BatchExtender
	driver.ForceReleaser
}

// Full is a store with every capability (internal/redisstore.Store).
type Full interface {
	View
	driver.MultiAcquirer
	driver.RWLocker
	driver.Semaphorer
}

// Store is a killable Full store. Its methods are safe for concurrent use.
type Store struct {
	view
	full              Full
	read, write, sems *view
}

// New wraps s.
func New(s Full) *Store {
	k := &Store{full: s}
	k.view = view{v: s, dead: new(atomic.Bool)}
	r, w := s.RWLocks()
	k.read = &view{v: r.(View), dead: k.dead}
	k.write = &view{v: w.(View), dead: k.dead}
	k.sems = &view{v: s.Semaphores().(View), dead: k.dead}
	return k
}

// Kill makes every later call fail with ErrKilled.
func (k *Store) Kill() { k.dead.Store(true) }

// AcquireAll implements driver.MultiAcquirer.
func (k *Store) AcquireAll(ctx context.Context, reqs []driver.AcquireRequest, fair bool) ([]driver.AcquireResult, bool, error) {
	if k.dead.Load() {
		return nil, true, ErrKilled
	}
	return k.full.AcquireAll(ctx, reqs, fair)
}

// RWLocks implements driver.RWLocker with killable views.
func (k *Store) RWLocks() (read, write driver.Backend) { return k.read, k.write }

// Semaphores implements driver.Semaphorer with a killable view.
func (k *Store) Semaphores() driver.Backend { return k.sems }

// view forwards every call of v while not dead.
type view struct {
	v    View
	dead *atomic.Bool
}

func (k *view) Acquire(ctx context.Context, req driver.AcquireRequest) (driver.AcquireResult, error) {
	if k.dead.Load() {
		return driver.AcquireResult{}, ErrKilled
	}
	return k.v.Acquire(ctx, req)
}

func (k *view) AcquireFair(ctx context.Context, req driver.AcquireRequest, waiterTTL time.Duration) (driver.AcquireResult, error) {
	if k.dead.Load() {
		return driver.AcquireResult{}, ErrKilled
	}
	return k.v.AcquireFair(ctx, req, waiterTTL)
}

func (k *view) Release(ctx context.Context, name, owner, ticket string) (bool, int, error) {
	if k.dead.Load() {
		return false, 0, ErrKilled
	}
	return k.v.Release(ctx, name, owner, ticket)
}

func (k *view) Extend(ctx context.Context, name, owner string, lease time.Duration) (bool, error) {
	if k.dead.Load() {
		return false, ErrKilled
	}
	return k.v.Extend(ctx, name, owner, lease)
}

func (k *view) ExtendBatch(ctx context.Context, batch []driver.Extension) error {
	if k.dead.Load() {
		return ErrKilled
	}
	return k.v.ExtendBatch(ctx, batch)
}

func (k *view) Leave(ctx context.Context, name, ticket string) error {
	if k.dead.Load() {
		return ErrKilled
	}
	return k.v.Leave(ctx, name, ticket)
}

func (k *view) Inspect(ctx context.Context, name string) (driver.State, error) {
	if k.dead.Load() {
		return driver.State{}, ErrKilled
	}
	return k.v.Inspect(ctx, name)
}

func (k *view) InspectQueue(ctx context.Context, name string) ([]driver.Waiter, error) {
	if k.dead.Load() {
		return nil, ErrKilled
	}
	return k.v.InspectQueue(ctx, name)
}

func (k *view) ForceRelease(ctx context.Context, name string) (bool, error) {
	if k.dead.Load() {
		return false, ErrKilled
	}
	return k.v.ForceRelease(ctx, name)
}

func (k *view) Subscribe(ctx context.Context, name, ticket string) (driver.Subscription, error) {
	if k.dead.Load() {
		return nil, ErrKilled
	}
	return k.v.Subscribe(ctx, name, ticket)
}

func (k *view) SubscribeActive(name, ticket string) (driver.Subscription, bool) {
	if k.dead.Load() {
		return nil, false
	}
	return k.v.SubscribeActive(name, ticket)
}
