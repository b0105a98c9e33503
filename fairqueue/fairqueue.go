package fairqueue

import "time"

// DefaultWaiterTTL is the heartbeat deadline of a waiter when none is set.
const DefaultWaiterTTL = 3 * time.Second

// MinWaiterTTL is the shortest accepted waiter TTL.
const MinWaiterTTL = 30 * time.Millisecond

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
