package locker

import (
	"context"
	"fmt"
	"time"

	"github.com/disgolock/disgo/locker/driver"
)

// ForceRelease is an operator's override: it frees the lock of key
// whoever holds it, whatever its hold count, and passes it on as a final
// release does (to the head of the fair queue, or waking every waiter).
// Use it for a holder that is stuck or gone; a live holder goes on working
// until it learns of the loss, so stop it first when you can.
//
// The former holder learns of it at its next renewal, a third of its lease
// at most after the force release: its [Lock.Done] closes and [Lock.Err]
// matches [ErrLost] and [ErrRevoked]. Holders through l itself learn at
// once. A holder with a fixed lease (not renewed) learns nothing before
// its lease ends; its [Lock.Release] then fails with [ErrNotHeld].
//
// It fails with [ErrNotHeld] when the lock was free (nothing changed),
// with [ErrUnsupported] when the backend has no force release
// (driver.ForceReleaser), with [ErrBackend] when the store failed, with
// ctx's error when ctx ended first (it may or may not have been applied),
// and with [ErrClosed] after [Locker.Close]. The store call is bounded by
// Options.RequestTimeout. Bad input is an [*ArgumentError], returned before
// the store is touched.
func (l *Locker[T]) ForceRelease(ctx context.Context, key T) error {
	const op = "force release"
	if ctx == nil {
		return &Error{Op: op, Name: l.nameOrEmpty(key), Err: argError("ctx", "nil")}
	}
	name, err := l.name(key)
	if err != nil {
		return &Error{Op: op, Err: err}
	}
	if l.closed.Load() {
		return &Error{Op: op, Name: name, Err: ErrClosed}
	}
	fr, ok := l.backend.(driver.ForceReleaser)
	if !ok {
		return &Error{Op: op, Name: name, Err: withCause(ErrUnsupported, fmt.Errorf("the backend %T has no force release (driver.ForceReleaser)", l.backend))}
	}
	if err := ctx.Err(); err != nil {
		return &Error{Op: op, Name: name, Err: err}
	}
	rctx, cancel := bounded(ctx, time.Now(), l.cfg.RequestTimeout)
	defer cancel()
	held, err := fr.ForceRelease(rctx, name)
	if err != nil {
		return &Error{Op: op, Name: name, Err: failure(ctx, err)}
	}
	if !held {
		return &Error{Op: op, Name: name, Err: ErrNotHeld}
	}
	l.revokeLocal(name)
	if l.peer != nil {
		l.peer.revokeLocal(name)
	}
	return nil
}

// errRevokedHere is the cause of a loss by a force release through the
// Locker that held the lock.
var errRevokedHere = fmt.Errorf("%w through this Locker", ErrRevoked)

// revokeLocal ends the holdings of name through l, whoever their owner.
func (l *Locker[T]) revokeLocal(name string) {
	l.mu.Lock()
	var ended []*hold
	for k, h := range l.holds {
		if k.name == name {
			ended = append(ended, h)
		}
	}
	l.mu.Unlock()
	for _, h := range ended {
		l.lose(h, errRevokedHere)
	}
}
