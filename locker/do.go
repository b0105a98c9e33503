package locker

import (
	"context"
	"errors"
	"time"
)

// Do runs fn while holding the lock of key: it acquires as
// [Locker.LockWithRenewal] does (waiting up to wait, renewing the lease
// until fn returns), calls fn, and releases.
//
// fn gets a context derived from ctx that is cancelled the moment the lock
// is lost, with the loss as its cause: context.Cause(fnCtx) matches
// [ErrLost] then. fn also gets the
// handle, for its fencing token ([Lock.Fence]): pass it to the resource
// you protect, so that a write made after a loss the process has not
// noticed yet can be refused.
//
// If fn releases the handle itself, Do does not release it again (fn's
// context is then cancelled with an [ErrReleased] cause). Otherwise the
// release runs when fn returns, or panics (the panic goes on after
// the release), detached from ctx's cancellation and bounded by
// Options.RequestTimeout: a cancelled request still frees the lock for the
// next waiter at once.
//
// Do returns:
//   - the acquisition's error, as LockWithRenewal's (for example
//     [ErrNotObtained] when wait ended, ctx's error, [ErrClosed]), without
//     calling fn;
//   - fn's error, as fn returned it, when the lock was held throughout and
//     released;
//   - when the lock was lost while fn ran: fn's error joined with the
//     loss (errors.Is matches both fn's error and [ErrLost]), even if fn
//     returned nil, since fn did not run under the lock to the end;
//   - when the release failed: fn's error joined with the release's (for
//     example an [ErrBackend] error; the lease then ends on its own).
//
// A nil fn is an [*ArgumentError], returned before the store is touched.
func (l *Locker[T]) Do(ctx context.Context, key T, wait time.Duration, fn func(ctx context.Context, lock *Lock[T]) error, opts ...CallOption) (err error) {
	if fn == nil {
		return &Error{Op: "do", Name: l.nameOrEmpty(key), Err: argError("fn", "nil")}
	}
	h, err := l.LockWithRenewal(ctx, key, wait, opts...)
	if err != nil {
		return err
	}
	fctx, cancel := context.WithCancelCause(ctx)
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-h.Done():
			cancel(h.Err())
		case <-stop:
		}
	}()
	defer func() {
		close(stop)
		<-watched
		lost := h.Err() // nil while held; ErrLost if the lock was lost in fn
		cancel(context.Canceled)
		if errors.Is(lost, ErrReleased) {
			return // fn released the handle itself
		}
		if lost != nil {
			err = joinErrors(err, lost)
			return
		}
		if rerr := h.Release(context.WithoutCancel(ctx)); rerr != nil {
			err = joinErrors(err, rerr)
		}
	}()
	return fn(fctx, h)
}

// nameOrEmpty is the lock name of key for an error message, or "" when the
// key has none.
func (l *Locker[T]) nameOrEmpty(key T) string {
	name, err := l.name(key)
	if err != nil {
		return ""
	}
	return name
}
