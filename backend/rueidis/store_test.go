package rueidisbackend

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/internal/rediscore"
	"github.com/disgolock/disgo/internal/redisstore"
	"github.com/disgolock/disgo/internal/redistest"
	"github.com/disgolock/disgo/locker"
)

func TestNewRejectsBadInput(t *testing.T) {
	c := newClient(t, redistest.Start(t))
	for name, tc := range map[string]struct {
		client rueidis.Client
		opts   Options
	}{
		"nil client":         {nil, Options{}},
		"brace in prefix":    {c, Options{Prefix: "a{b"}},
		"closing brace":      {c, Options{Prefix: "a}"}},
		"negative retention": {c, Options{FenceRetention: -time.Second}},
	} {
		s, err := New(tc.client, tc.opts)
		assert.ErrorIs(t, err, locker.ErrInvalidArgument, name)
		assert.Nil(t, s, name)
	}
	s, err := New(c, Options{})
	require.NoError(t, err)
	assert.Equal(t, rediscore.DefaultPrefix, redisstore.Settings(s).Layout.Prefix)
	assert.Equal(t, rediscore.DefaultFenceRetention, redisstore.Settings(s).FenceRetention)
	assert.Equal(t, rediscore.Sharded, redisstore.Settings(s).Publish)
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "Close is idempotent")

	s, err = New(c, Options{Prefix: "p", FenceRetention: time.Hour, ClassicPubSub: true})
	require.NoError(t, err)
	assert.Equal(t, "p", redisstore.Settings(s).Layout.Prefix)
	assert.Equal(t, time.Hour, redisstore.Settings(s).FenceRetention)
	assert.Equal(t, rediscore.Classic, redisstore.Settings(s).Publish)
	require.NoError(t, s.Close())
}

// TestGivingUpRunsAfterTheAbandonedAttempt: an attempt whose caller gave
// up while it was on its way still runs in the server, and the caller's
// clean-up (Leave, or the Release that undoes the attempt) must run after
// it, even when rueidis sends the two on different connections.
func TestGivingUpRunsAfterTheAbandonedAttempt(t *testing.T) {
	srv := redistest.Start(t)
	s, _ := newStore(t, srv, Options{})
	ctx := ctxT(t)
	var load sync.WaitGroup
	defer load.Wait()
	for i := range 100 {
		fair := i%2 == 0
		name := fmt.Sprint("abandoned-", i)
		if fair {
			_, err := s.Acquire(ctx, req(name, "alice", time.Minute))
			require.NoError(t, err)
		}
		// Other traffic, so that the pipelined connections are busy.
		for range 3 {
			load.Go(func() { _, _ = s.Inspect(ctx, "other") })
		}
		r := req(name, "bob", time.Minute)
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
}
