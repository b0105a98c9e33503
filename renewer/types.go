package renewer

import (
	"context"
	"errors"
	"time"
)

// Extender is what the renewer needs from a store: every driver.Backend is
// one. Extend sets the remaining lease of a lock held by owner; held ==
// false means the owner no longer holds it. It must not retry.
type Extender interface {
	Extend(ctx context.Context, name, owner string, lease time.Duration) (held bool, err error)
}

var (
	// ErrNotHeld: the store reported that the owner no longer holds the lock
	// (it expired, was deleted, or another owner took it).
	ErrNotHeld = errors.New("renewer: the store no longer names this owner")
	// ErrDeadline: the lease deadline passed before a renewal was confirmed.
	ErrDeadline = errors.New("renewer: lease deadline passed before renewal was confirmed")
)
