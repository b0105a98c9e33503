package locker

import (
	"context"
	"errors"
	"sync/atomic"
	"time"
)

// Lock is one held acquisition, returned by the Locker's acquiring methods.
// Its methods are safe for concurrent use.
type Lock[T any] struct {
	l     *Locker[T]
	key   T
	name  string
	owner string
	fence int64
	h     *hold
	st    lockState
}

// lockState is the loss signal of one handle. Its fields are written
// with Locker.mu held; done is also read without it.
type lockState struct {
	done     atomic.Value // chan struct{}: made by the first Done (most handles are never asked)
	err      error
	released bool
}

// end (Locker.mu held) ends the handle with err, once, closing its Done.
func (s *lockState) end(err error) {
	if s.err == nil {
		s.err = err
		if c, ok := s.done.Load().(chan struct{}); ok {
			close(c)
		}
	}
}

// closedChan is the Done of a handle that ended before Done was asked for.
var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// valid reports whether h is a handle an acquiring call returned: not nil
// and not the zero Lock.
func (h *Lock[T]) valid() bool { return h != nil && h.l != nil && h.h != nil }

// Key returns the key the lock was taken on; the zero T for a nil or zero
// handle.
func (h *Lock[T]) Key() T {
	if h == nil {
		var zero T
		return zero
	}
	return h.key
}

// Name returns the namespace-qualified lock name; "" for a nil handle.
func (h *Lock[T]) Name() string {
	if h == nil {
		return ""
	}
	return h.name
}

// Owner returns the owner token. Pass it to [WithOwner] to re-enter. It is
// "" for a nil handle.
func (h *Lock[T]) Owner() string {
	if h == nil {
		return ""
	}
	return h.owner
}

// Fence returns the fencing token: greater than the token of every earlier
// holding of this name, and the same for re-entries. Send it with every
// write the lock protects and have the resource reject lower tokens. It is
// 0 for a nil handle.
func (h *Lock[T]) Fence() int64 {
	if h == nil {
		return 0
	}
	return h.fence
}

// Deadline returns when the lease ends as far as this process knows: the
// local monotonic time taken before the request that set the lease was
// sent, plus the lease. Renewal moves it forward. It is the zero Time for
// a nil or zero handle.
func (h *Lock[T]) Deadline() time.Time {
	if !h.valid() {
		return time.Time{}
	}
	h.l.mu.Lock()
	defer h.l.mu.Unlock()
	return h.h.deadline
}

// Done is closed when the handle stops holding the lock: on its release,
// or when the lock is lost (lease lapsed, renewal failed, taken by
// another). Err tells which. A nil or zero handle's Done is closed.
func (h *Lock[T]) Done() <-chan struct{} {
	if !h.valid() {
		return closedChan
	}
	if c, ok := h.st.done.Load().(chan struct{}); ok {
		return c
	}
	h.l.mu.Lock()
	defer h.l.mu.Unlock()
	if c, ok := h.st.done.Load().(chan struct{}); ok {
		return c
	}
	c := closedChan
	if h.st.err == nil {
		c = make(chan struct{})
	}
	h.st.done.Store(c)
	return c
}

// Err returns nil while the lock is held; after Done is closed it returns
// an error matching [ErrReleased] or [ErrLost] (wrapping the cause). For a
// nil or zero handle, which never held anything, it returns [ErrNotHeld].
func (h *Lock[T]) Err() error {
	if !h.valid() {
		return ErrNotHeld
	}
	h.l.mu.Lock()
	defer h.l.mu.Unlock()
	return h.st.err
}

// Release undoes this handle's acquisition.
//
// When it is the owner's last handle through this Locker, renewal stops
// before the store is asked, whatever the store then answers: a release
// that fails leaves a lease that ends on its own, never one that is
// renewed. The handle ends in every case ([Lock.Done] closes, [Lock.Err]
// matches [ErrReleased]), and a second Release fails with [ErrNotHeld].
//
// The store call is bounded by ctx and Options.RequestTimeout. If ctx is
// already done when Release is called, as in a deferred Release at the end
// of a cancelled request, the call still goes out, detached from ctx's
// cancellation (its values are kept) and bounded by RequestTimeout alone,
// so that the lock is freed for the next waiter at once rather than when
// its lease ends; the result then says what the store did, not that ctx
// was done.
//
// It fails with [ErrNotHeld] when the store says the owner no longer holds
// the lock (it expired or was taken), the handle was released already, or
// the handle is nil or the zero Lock; with [ErrBackend] when the store
// failed; and with ctx's error when ctx ended during the call (the release
// may or may not have been applied). A nil ctx is an [*ArgumentError] and
// changes nothing.
func (h *Lock[T]) Release(ctx context.Context) error {
	const op = "release"
	if !h.valid() {
		return &Error{Op: op, Name: h.Name(), Err: ErrNotHeld}
	}
	if ctx == nil {
		return &Error{Op: op, Name: h.name, Err: argError("ctx", "nil")}
	}
	l := h.l
	l.mu.Lock()
	if h.st.released {
		l.mu.Unlock()
		return &Error{Op: op, Name: h.name, Err: ErrNotHeld}
	}
	h.st.released = true
	h.st.end(ErrReleased)
	var stop func()
	ended := !h.h.remove(&h.st) && !h.h.gone
	if ended {
		stop = l.forget(h.h)
	}
	l.mu.Unlock()
	if stop != nil {
		stop()
	}
	if l.obs == nil {
		return h.release(ctx)
	}
	t0 := time.Now()
	ctx = l.opStart(ctx, OpRelease, h.name)
	err := h.release(ctx)
	if ended {
		l.obs.Event(Event{Kind: EventReleased, Name: h.name, Fence: h.fence})
	}
	l.opEnd(ctx, OpRelease, h.name, t0, h.fence, err)
	return err
}

// release is Release's store call.
func (h *Lock[T]) release(ctx context.Context) error {
	const op = "release"
	l := h.l
	detached := ctx.Err() != nil
	var (
		rctx   context.Context
		cancel context.CancelFunc
	)
	if detached {
		rctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), l.cfg.RequestTimeout)
	} else {
		rctx, cancel = bounded(ctx, time.Now(), l.cfg.RequestTimeout)
	}
	defer cancel()
	held, _, err := l.backend.Release(rctx, h.name, h.owner, "")
	if err != nil && detached {
		cleanupError(l.obs, rctx, h.name, "release", err)
	} else if err != nil {
		storeError(l.obs, ctx, h.name, "release", err)
	}
	switch {
	case err != nil && detached:
		return &Error{Op: op, Name: h.name, Err: backendError(err)}
	case err != nil:
		return &Error{Op: op, Name: h.name, Err: failure(ctx, err)}
	case !held:
		return &Error{Op: op, Name: h.name, Err: ErrNotHeld}
	}
	return nil
}

// Extend sets the remaining lease to lease (from [MinLease] to [MaxLease]),
// for locks taken with a fixed lease that need more time. It fails with
// [ErrNotHeld] when the owner no longer holds the lock, which also ends the
// handle (the error also matches [ErrRevoked] when a force release ended
// the holding), or when the handle was released, is nil or is the zero Lock. An
// already-done ctx fails with its error and changes nothing.
func (h *Lock[T]) Extend(ctx context.Context, lease time.Duration) error {
	const op = "extend"
	switch {
	case !h.valid():
		return &Error{Op: op, Name: h.Name(), Err: ErrNotHeld}
	case ctx == nil:
		return &Error{Op: op, Name: h.name, Err: argError("ctx", "nil")}
	case lease < MinLease:
		return &Error{Op: op, Name: h.name, Err: argError("lease", "%v is below the minimum %v", lease, MinLease)}
	case lease > MaxLease:
		return &Error{Op: op, Name: h.name, Err: argError("lease", "%v is above the maximum %v (MaxLease)", lease, MaxLease)}
	case ctx.Err() != nil:
		return &Error{Op: op, Name: h.name, Err: ctx.Err()}
	}
	l := h.l
	l.mu.Lock()
	released := h.st.released
	l.mu.Unlock()
	if released {
		return &Error{Op: op, Name: h.name, Err: ErrNotHeld}
	}
	if l.obs == nil {
		return h.extend(ctx, lease)
	}
	t0 := time.Now()
	ctx = l.opStart(ctx, OpExtend, h.name)
	err := h.extend(ctx, lease)
	l.opEnd(ctx, OpExtend, h.name, t0, h.fence, err)
	return err
}

// extend is Extend's store call.
func (h *Lock[T]) extend(ctx context.Context, lease time.Duration) error {
	const op = "extend"
	l := h.l
	start := time.Now()
	rctx, cancel := bounded(ctx, start, l.cfg.RequestTimeout)
	defer cancel()
	held, err := l.backend.Extend(rctx, h.name, h.owner, lease)
	switch {
	case errors.Is(err, ErrRevoked):
		// Not a store failure: an operator forced the holding out.
		l.lose(h.h, err)
		return &Error{Op: op, Name: h.name, Err: withCause(ErrNotHeld, err)}
	case err != nil:
		storeError(l.obs, ctx, h.name, "extend", err)
		return &Error{Op: op, Name: h.name, Err: failure(ctx, err)}
	case !held:
		l.lose(h.h, errNotHeldByStore)
		return &Error{Op: op, Name: h.name, Err: ErrNotHeld}
	}
	l.mu.Lock()
	if !h.h.gone {
		h.h.deadline = start.Add(lease)
		if h.h.stop == nil {
			l.armTimer(h.h)
		}
	}
	l.mu.Unlock()
	return nil
}
