package renewer

import (
	"context"
	"errors"
	"time"
)

// Extender is what the renewer needs from a store: every locker.Backend is
// one. Extend sets the remaining lease of a lock held by owner; held ==
// false means the owner no longer holds it. It must not retry.
type Extender interface {
	Extend(ctx context.Context, name, owner string, lease time.Duration) (held bool, err error)
}

// BatchExtender is an optional capability of an Extender: extend many leases
// in one round trip (a pipeline). ExtendBatch sets Held and Err of every
// item. It returns a non-nil error only when the batch as a whole failed,
// in which case the items' fields are not meaningful. It must not retry.
type BatchExtender interface {
	ExtendBatch(ctx context.Context, batch []Extension) error
}

// Extension is one item of a batch.
type Extension struct {
	Name  string
	Owner string
	Lease time.Duration
	Held  bool  // result: the owner still holds the lock and its lease was set
	Err   error // result: this item failed
}

// Hold is one auto-renewed lease handed to [Renewer.Keep].
type Hold struct {
	Name  string
	Owner string
	// Lease is the length every renewal sets.
	Lease time.Duration
	// Deadline is when the current lease ends, by the local monotonic clock,
	// measured from before the acquiring request was sent.
	Deadline time.Time
	// OnRenewed, if not nil, is called after each confirmed renewal with the
	// new deadline (taken before the renewal request was sent).
	OnRenewed func(deadline time.Time)
	// OnLost is called at most once, when the lease is lost: with an error
	// matching ErrNotHeld when the store no longer names the owner, or
	// ErrDeadline when no renewal could be confirmed before the deadline.
	// It is also called with ErrClosed for a hold still kept when the
	// Renewer closes, or passed to Keep after Close, and with
	// ErrInvalidHold for a Lease out of range (these two on the caller's
	// goroutine, before Keep returns).
	OnLost func(cause error)
}

var (
	// ErrNotHeld: the store reported that the owner no longer holds the lock
	// (it expired, was deleted, or another owner took it).
	ErrNotHeld = errors.New("renewer: the store no longer names this owner")
	// ErrDeadline: the lease deadline passed before a renewal was confirmed.
	ErrDeadline = errors.New("renewer: lease deadline passed before renewal was confirmed")
)
