package redisstore

import (
	"context"
	"fmt"
	"time"

	"github.com/disgolock/disgo/internal/rediscore"
	"github.com/disgolock/disgo/locker/driver"
)

// View is a Backend of a Store on one kind of lock of its own beside the
// mutexes: the read holds or the write holds of read-write locks (see
// Store.RWLocks), or semaphores (Store.Semaphores). It implements
// driver.Backend, driver.Queue, driver.Notifier, driver.Inspector,
// driver.BatchExtender and driver.ForceReleaser on the Store's client and
// pub/sub connections. Its methods are safe for concurrent use.
type View struct {
	s    *Store
	kind byte           // 'r', 'w' or 's': the holdings this view takes
	k    rediscore.Kind // the keys it works on
	hub  string         // starts the hub names of its lock names (see hubName)
}

var (
	_ driver.Backend       = (*View)(nil)
	_ driver.Queue         = (*View)(nil)
	_ driver.Notifier      = (*View)(nil)
	_ driver.Inspector     = (*View)(nil)
	_ driver.BatchExtender = (*View)(nil)
	_ driver.ForceReleaser = (*View)(nil)
	_ driver.RWLocker      = (*Store)(nil)
	_ driver.Semaphorer    = (*Store)(nil)
)

var (
	kindAcquireScript = newScriptN(rediscore.KindAcquireLua, rediscore.NumKindKeys)
	kindReleaseScript = newScriptN(rediscore.KindReleaseLua, rediscore.NumKindKeys)
	kindExtendScript  = newScriptN(rediscore.KindExtendLua, rediscore.NumKindKeys)
	kindLeaveScript   = newScriptN(rediscore.KindLeaveLua, rediscore.NumKindKeys)
	kindForceScript   = newScriptN(rediscore.KindForceReleaseLua, rediscore.NumKindKeys)
	kindInspectScript = newScriptN(rediscore.KindInspectLua, rediscore.NumKindKeys)
	kindQueueScript   = newScriptN(rediscore.InspectQueueLua, rediscore.NumKindKeys)
)

// Hub names. The Store's one notifyhub.Hub takes the lock names of every
// kind: a mutex's name as it is (or, when it starts with a zero byte,
// behind hubMutex), a read-write lock's behind hubRW and a semaphore's
// behind hubSem, so that the three locks of one name are three hub names,
// each mapped to its own channel (see Store.hubChannel).
const (
	hubMutex = "\x00m"
	hubRW    = "\x00w"
	hubSem   = "\x00s"
)

// hubName returns the hub name of a mutex name.
func hubName(name string) string {
	if name != "" && name[0] == 0 {
		return hubMutex + name
	}
	return name
}

// hubChannel returns the channel of a hub name.
func (s *Store) hubChannel(h string) string {
	if len(h) < 2 || h[0] != 0 {
		return s.layout.Channel(h)
	}
	switch h[:2] {
	case hubRW:
		return s.layout.KindChannel(rediscore.RW, h[2:])
	case hubSem:
		return s.layout.KindChannel(rediscore.Semaphore, h[2:])
	}
	return s.layout.Channel(h[2:])
}

func newViews(s *Store) {
	s.read = &View{s: s, kind: 'r', k: rediscore.RW, hub: hubRW}
	s.write = &View{s: s, kind: 'w', k: rediscore.RW, hub: hubRW}
	s.sem = &View{s: s, kind: 's', k: rediscore.Semaphore, hub: hubSem}
}

// RWLocks implements driver.RWLocker: the views of the Store's read-write
// locks that take read holds and write holds. The read-write lock of a name
// has keys of its own (Prefix + ":{name}:rw.*"), apart from the name's
// mutex and semaphore. It returns the same values every time.
func (s *Store) RWLocks() (read, write driver.Backend) { return s.read, s.write }

// Semaphores implements driver.Semaphorer: the view of the Store's
// semaphores, whose keys (Prefix + ":{name}:sem.*") are apart from the
// name's mutex and read-write lock. It returns the same value every time.
func (s *Store) Semaphores() driver.Backend { return s.sem }

func (v *View) keys(name string) []string { return v.s.layout.KindKeys(v.k, name) }

// Acquire implements driver.Backend for the view's kind, as Store.Acquire
// does for a mutex: one round trip, the same cancellation. A write hold
// asked by an owner holding a read hold and no write hold fails with an
// error matching driver.ErrUpgrade; a semaphore request whose limit or
// permits do not match, with one matching driver.ErrMismatch; in both
// cases nothing changed.
func (v *View) Acquire(ctx context.Context, req driver.AcquireRequest) (driver.AcquireResult, error) {
	return v.acquire(ctx, "acquire", req, false, 0)
}

// AcquireFair implements driver.Queue for the view's kind: one FIFO queue
// of every holding of the name (readers and writers together).
func (v *View) AcquireFair(ctx context.Context, req driver.AcquireRequest, waiterTTL time.Duration) (driver.AcquireResult, error) {
	return v.acquire(ctx, "acquire fair", req, true, waiterTTL)
}

func (v *View) acquire(ctx context.Context, op string, req driver.AcquireRequest, fair bool, waiterTTL time.Duration) (driver.AcquireResult, error) {
	s := v.s
	args := rediscore.KindAcquireArgs(v.kind, req, fair, waiterTTL, s.fenceRetention, s.publish, s.inbox)
	sctx, done := settle(ctx)
	val, err := s.runKeys(sctx, kindAcquireScript, v.keys(req.Name), args)
	done()
	if err != nil && s.client.Refused(err) {
		if kerr := rediscore.KindError(err.Error()); kerr != nil {
			return driver.AcquireResult{}, s.wrap(ctx, op, kerr) // nothing changed
		}
	}
	if err == nil {
		err = ctx.Err() // answered after the caller gave up: it will undo the attempt
	}
	var buf [4]int64
	reply := buf[:0]
	if a, _ := val.([]any); err == nil && len(a) <= len(buf) {
		reply = buf[:len(a)]
		err = decode(reply, a)
	}
	var res driver.AcquireResult
	if err == nil {
		res, err = rediscore.ParseAcquire(reply)
	}
	if err != nil {
		return driver.AcquireResult{}, s.wrap(ctx, op, err)
	}
	return res, nil
}

// Release implements driver.Backend for the view's kind: the last release
// of a holding grants its permits to the queue from its head on, as long as
// they fit, and wakes barging waiters. One round trip.
func (v *View) Release(ctx context.Context, name, owner, ticket string) (held bool, remaining int, err error) {
	s := v.s
	n, err := integer(s.runKeys(ctx, kindReleaseScript, v.keys(name), rediscore.KindReleaseArgs(v.kind, owner, ticket, s.publish, s.fenceRetention)))
	if err != nil {
		return false, 0, s.wrap(ctx, "release", err)
	}
	held, remaining = rediscore.ParseKindRelease(n)
	return held, remaining, nil
}

// Extend implements driver.Backend for the view's kind: it sets the lease
// of owner's holding of the view; an error matching driver.ErrRevoked when
// an operator forced it out. One round trip.
func (v *View) Extend(ctx context.Context, name, owner string, lease time.Duration) (held bool, err error) {
	s := v.s
	n, err := integer(s.runKeys(ctx, kindExtendScript, v.keys(name), rediscore.KindExtendArgs(v.kind, owner, lease)))
	if err != nil {
		return false, s.wrap(ctx, "extend", err)
	}
	return rediscore.ParseExtend(n)
}

// ExtendBatch implements driver.BatchExtender for the view's kind, as
// Store.ExtendBatch does.
func (v *View) ExtendBatch(ctx context.Context, batch []driver.Extension) error {
	return v.s.extendBatch(ctx, batch, kindExtendScript, v.keys, func(e driver.Extension) []string {
		return rediscore.KindExtendArgs(v.kind, e.Owner, e.Lease)
	})
}

// ForceRelease implements driver.ForceReleaser for the view's kind: every
// holding of the name ends (for a read-write lock, read and write holds,
// through either view); the permits pass on as after a release, and each
// former holder's next Extend fails with driver.ErrRevoked.
func (v *View) ForceRelease(ctx context.Context, name string) (held bool, err error) {
	s := v.s
	val, err := s.runKeys(ctx, kindForceScript, v.keys(name), rediscore.KindForceReleaseArgs(v.kind, s.publish, s.fenceRetention))
	var reply []string
	if err == nil {
		reply, err = strs(val)
	}
	if err != nil {
		return false, s.wrap(ctx, "force release", err)
	}
	return rediscore.ParseKindForceRelease(reply)
}

// Leave implements driver.Queue for the view's kind: the ticket leaves the
// queue, which is then granted holdings from its head on as long as they
// fit. One round trip.
func (v *View) Leave(ctx context.Context, name, ticket string) error {
	s := v.s
	if _, err := s.runKeys(ctx, kindLeaveScript, v.keys(name), rediscore.KindLeaveArgs(v.kind, ticket, s.publish, s.fenceRetention)); err != nil {
		return s.wrap(ctx, "leave", err)
	}
	return nil
}

// Inspect implements driver.Inspector for the view's kind: every live
// holding in State.Holders; for a read-write lock the write holder as
// Owner, Count, Fence and TTL; for a semaphore Limit and Used. Read-only,
// one round trip.
func (v *View) Inspect(ctx context.Context, name string) (driver.State, error) {
	s := v.s
	val, err := s.runKeys(ctx, kindInspectScript, v.keys(name), nil)
	var reply []string
	if err == nil {
		reply, err = strs(val)
	}
	if err != nil {
		return driver.State{}, s.wrap(ctx, "inspect", err)
	}
	st, err := rediscore.ParseKindInspect(v.k, reply)
	if err != nil {
		return driver.State{}, fmt.Errorf("%s: %w", s.name, err)
	}
	return st, nil
}

// InspectQueue implements driver.Inspector for the view's kind: the one
// queue of the name, readers and writers together, as Store.InspectQueue.
func (v *View) InspectQueue(ctx context.Context, name string) ([]driver.Waiter, error) {
	s := v.s
	val, err := s.runKeys(ctx, kindQueueScript, v.keys(name), nil)
	if err != nil {
		return nil, s.wrap(ctx, "inspect queue", err)
	}
	reply, err := strs(val)
	if err != nil {
		return nil, fmt.Errorf("%s: inspect queue: %w", s.name, err)
	}
	waiters, err := rediscore.ParseKindQueue(reply)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.name, err)
	}
	return waiters, nil
}

// Subscribe implements driver.Notifier for the view's kind, on the Store's
// pub/sub connections (see Store.Subscribe): the channel of the name's lock
// of this kind and the Store's inbox channel of it. Both views of a
// read-write lock share its channel.
func (v *View) Subscribe(ctx context.Context, name, ticket string) (driver.Subscription, error) {
	return v.s.hub.Subscribe(ctx, v.hub+name, ticket)
}

// SubscribeActive implements driver.Notifier for the view's kind (see
// Store.SubscribeActive).
func (v *View) SubscribeActive(name, ticket string) (driver.Subscription, bool) {
	return v.s.hub.SubscribeActive(v.hub+name, ticket)
}
