package fairqueue

import (
	"crypto/rand"
	"encoding/base64"
	"time"
)

// DefaultWaiterTTL is the heartbeat deadline of a waiter when none is set.
const DefaultWaiterTTL = 3 * time.Second

// MinWaiterTTL is the shortest accepted waiter TTL.
const MinWaiterTTL = 30 * time.Millisecond

// NewTicket returns a new random ticket: 128 bits, URL-safe base64 (22
// bytes). Tickets identify one acquiring call; owner tokens use the same
// generator.
func NewTicket() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never returns an error (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Policy is the timing of a waiting room.
type Policy struct {
	// WaiterTTL is how long the store keeps a ticket after its last
	// heartbeat. Zero means DefaultWaiterTTL.
	WaiterTTL time.Duration
}

// TTL returns the effective waiter TTL.
func (p Policy) TTL() time.Duration {
	if p.WaiterTTL <= 0 {
		return DefaultWaiterTTL
	}
	return p.WaiterTTL
}

// Heartbeat is the longest a live waiter goes between attempts: a third of
// the TTL, so that two heartbeats may be lost or late before eviction.
func (p Policy) Heartbeat() time.Duration { return p.TTL() / 3 }

// EvictionBound is the longest one dead waiter can stall the queue after
// the lock became free: its TTL runs out, and the next waiter's heartbeat
// attempt evicts it.
func (p Policy) EvictionBound() time.Duration { return p.TTL() + p.Heartbeat() }

// Recheck returns how long a waiter sleeps before its fallback re-check
// when no wake-up arrives: never longer than the holder's remaining lease
// (plus a millisecond, so the key has expired when it looks), nor than
// limit (the fallback interval, or the heartbeat in fair mode). A negative
// holderTTL (lock free but not ours, or unknown) is ignored. The result is
// at least a millisecond, so that a waiter never spins.
func Recheck(holderTTL, limit time.Duration) time.Duration {
	d := limit
	if holderTTL >= 0 && holderTTL+time.Millisecond < d {
		d = holderTTL + time.Millisecond
	}
	if d < time.Millisecond {
		d = time.Millisecond
	}
	return d
}
