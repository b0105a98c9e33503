package redisstore_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/internal/rediscore"
	"github.com/disgolock/disgo/internal/redisstore"
	"github.com/disgolock/disgo/internal/redistest"
	"github.com/disgolock/disgo/locker"
)

func TestNewResolvesOptions(t *testing.T) {
	srv := redistest.Start(t)
	for _, a := range adapters {
		t.Run(a.name, func(t *testing.T) {
			for name, opts := range map[string]redisstore.Options{
				"brace in prefix":    {Prefix: "a{b"},
				"closing brace":      {Prefix: "a}"},
				"negative retention": {FenceRetention: -time.Second},
			} {
				s, err := a.new(t, srv.Addr, opts)
				assert.ErrorIs(t, err, locker.ErrInvalidArgument, name)
				assert.Nil(t, s, name)
			}
			s, err := a.new(t, srv.Addr, redisstore.Options{})
			require.NoError(t, err)
			assert.Equal(t, rediscore.Settings{Layout: rediscore.Layout{Prefix: rediscore.DefaultPrefix},
				FenceRetention: rediscore.DefaultFenceRetention, Publish: rediscore.Sharded}, redisstore.Settings(s))
			require.NoError(t, s.Close())
			require.NoError(t, s.Close(), "Close is idempotent")

			s, err = a.new(t, srv.Addr, redisstore.Options{Prefix: "p", FenceRetention: time.Hour, ClassicPubSub: true})
			require.NoError(t, err)
			assert.Equal(t, rediscore.Settings{Layout: rediscore.Layout{Prefix: "p"}, FenceRetention: time.Hour,
				Publish: rediscore.Classic}, redisstore.Settings(s))
			require.NoError(t, s.Close())
		})
	}
}

// TestGivingUpRunsAfterTheAbandonedAttempt: an attempt whose caller gave
// up while it was on its way still runs in the server, and the caller's
// clean-up (Leave, or the Release that undoes the attempt) must run after
// it, even when the client sends the two on different connections.
func TestGivingUpRunsAfterTheAbandonedAttempt(t *testing.T) {
	forEachAdapter(t, func(t *testing.T, s *redisstore.Store) {
		ctx := ctxT(t)
		var load sync.WaitGroup
		defer load.Wait()
		for i := range 100 {
			fair := i%2 == 0
			name := fmt.Sprint("abandoned-", i)
			if fair {
				_, err := s.Acquire(ctx, req(name, "alice"))
				require.NoError(t, err)
			}
			// Other traffic, so that the connections are busy.
			for range 3 {
				load.Go(func() { _, _ = s.Inspect(ctx, "other") })
			}
			r := req(name, "bob")
			gaveUp, cancel := context.WithCancel(ctx)
			go func() {
				time.Sleep(time.Duration(i%40) * time.Microsecond)
				cancel()
			}()
			if fair {
				_, _ = s.AcquireFair(gaveUp, r, time.Minute)
				require.NoError(t, s.Leave(ctx, name, r.Ticket))
			} else {
				_, _ = s.Acquire(gaveUp, r)
				_, _, err := s.Release(ctx, name, "bob", r.Ticket)
				require.NoError(t, err)
			}
			st, err := s.Inspect(ctx, name)
			require.NoError(t, err)
			if fair {
				require.Zero(t, st.Waiters, "%s: the ticket stayed queued after Leave", name)
			} else {
				require.Empty(t, st.Owner, "%s: the undone attempt holds the lock", name)
			}
		}
	})
}

// TestAnswerAfterGivingUpIsAnError: an attempt whose caller gave up before
// the answer came reports the context's error, whatever the server did, so
// that the caller undoes it.
func TestAnswerAfterGivingUpIsAnError(t *testing.T) {
	forEachAdapter(t, func(t *testing.T, s *redisstore.Store) {
		gaveUp, cancel := context.WithCancel(ctxT(t))
		cancel()
		_, err := s.Acquire(gaveUp, req("a", "alice"))
		require.ErrorIs(t, err, context.Canceled)
		_, err = s.AcquireFair(gaveUp, req("a", "alice"), time.Minute)
		require.ErrorIs(t, err, context.Canceled)
	})
}

func TestInspectQueue(t *testing.T) {
	forEachAdapter(t, func(t *testing.T, s *redisstore.Store) {
		ctx := ctxT(t)
		q, err := s.InspectQueue(ctx, "q")
		require.NoError(t, err)
		assert.Empty(t, q, "the queue of a free lock")

		_, err = s.AcquireFair(ctx, req("q", "holder"), time.Minute)
		require.NoError(t, err)
		b, c := req("q", "bob with spaces"), req("q", "carol")
		_, err = s.AcquireFair(ctx, b, time.Minute)
		require.NoError(t, err)
		_, err = s.AcquireFair(ctx, c, 2*time.Minute)
		require.NoError(t, err)

		q, err = s.InspectQueue(ctx, "q")
		require.NoError(t, err)
		require.Len(t, q, 2)
		for i, want := range []struct {
			ticket, owner string
			ttl           time.Duration
		}{{b.Ticket, "bob with spaces", time.Minute}, {c.Ticket, "carol", 2 * time.Minute}} {
			assert.Equal(t, i, q[i].Position)
			assert.Equal(t, want.ticket, q[i].Ticket)
			assert.Equal(t, want.owner, q[i].Owner)
			assert.Equal(t, want.ttl, q[i].TTL, "heartbeat TTL of %s", want.owner)
			assert.LessOrEqual(t, q[i].Heartbeat, want.ttl, "heartbeat of %s", want.owner)
			assert.Greater(t, q[i].Heartbeat, want.ttl-patience, "heartbeat of %s", want.owner)
		}

		// A heartbeat that lapsed is negative; a lapsed waiter stays listed
		// until an attempt evicts it.
		d, err := s.AcquireFair(ctx, req("q", "dave"), time.Millisecond)
		require.NoError(t, err)
		require.Equal(t, 2, d.Position)
		require.Eventually(t, func() bool {
			q, err = s.InspectQueue(ctx, "q")
			return err == nil && len(q) == 3 && q[2].Heartbeat < 0
		}, patience, 5*time.Millisecond, "the lapsed heartbeat of dave")
		assert.Equal(t, "dave", q[2].Owner)

		require.NoError(t, s.Leave(ctx, "q", b.Ticket))
		q, err = s.InspectQueue(ctx, "q")
		require.NoError(t, err)
		require.Len(t, q, 2)
		assert.Equal(t, c.Ticket, q[0].Ticket, "the head after bob left")
		assert.Equal(t, 0, q[0].Position)
	})
}
