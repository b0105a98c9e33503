package memory

import (
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/internal/storetest"
)

// TestStore runs the backend-level contract tests on a memory store of a
// manual clock. Each store of a test is a Client of one Store, as each
// process would have its own; the hooks reach into the Store's records,
// and after each test the grant records are checked against the queues.
func TestStore(t *testing.T) {
	storetest.Run(t, storetest.Harness{Start: func(t *testing.T) *storetest.Server {
		s, clk := newStore()
		t.Cleanup(func() { checkGrants(t, s) })
		return &storetest.Server{
			Store:         s.Client(),
			Client:        func(*testing.T) storetest.Store { return s.Client() },
			Subscriptions: func(c storetest.Store) int { return c.(*Client).ActiveSubscriptions() },
			Unsubscribed: func(t *testing.T, names ...string) {
				s.mu.Lock()
				defer s.mu.Unlock()
				for _, name := range names {
					assert.Empty(t, s.subs[topic{mutexLock, name}], "subscriptions to %q are left", name)
				}
			},
			Expire: func(_ *testing.T, name string) { expireLock(s, name) },
			Wipe:   func(_ *testing.T, name string) { s.Wipe(name) },
			Pass:   func(_ *testing.T, d time.Duration) { clk.Advance(d + time.Millisecond) },
			Records: func(*testing.T) []string {
				keys := s.Keys("")
				slices.Sort(keys)
				return keys
			},
			// A store delivers every message before the call that
			// published it returns.
			Flush: func(*testing.T, storetest.Store, string) {},
		}
	}})
}

// expireLock makes the lease of name lapse now, leaving its queue alone.
func expireLock(s *Store, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.names[name]; r != nil && r.count > 0 {
		r.expiry = s.clock.Add(-time.Nanosecond)
	}
}

// checkGrants checks that the store keeps a grant record for every queued
// ticket, and for nothing else: what a release needs to hand the lock on,
// and nothing left behind by a waiter that left, was evicted or took the
// lock.
func checkGrants(t *testing.T, s *Store) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, r := range s.names {
		tickets, _ := r.room.Tickets()
		var granted []string
		for tk := range r.grants {
			granted = append(granted, tk)
		}
		require.ElementsMatch(t, tickets, granted, "grant records of %q", name)
	}
}
