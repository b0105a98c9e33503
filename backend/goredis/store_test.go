package goredis

import (
	"bytes"
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/internal/redistest"
	"github.com/disgolock/disgo/internal/token"
	"github.com/disgolock/disgo/locker"
	"github.com/disgolock/disgo/locker/driver"
)

// TestNewRejectsANilClient: the options are checked for both adapters in
// internal/redisstore (TestNewResolvesOptions).
func TestNewRejectsANilClient(t *testing.T) {
	s, err := New(nil, Options{})
	assert.ErrorIs(t, err, locker.ErrInvalidArgument)
	assert.Nil(t, s)
}

// TestNewRejectsAnAutoPipeliner: it would not bound the Store's calls by
// their contexts.
func TestNewRejectsAnAutoPipeliner(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialled
	defer func() { _ = c.Close() }()
	ap, err := c.AutoPipeline()
	require.NoError(t, err)
	defer func() { _ = ap.Close() }()
	s, err := New(ap, Options{})
	var ae *locker.ArgumentError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, "client", ae.Arg)
	assert.ErrorIs(t, err, locker.ErrInvalidArgument)
	assert.Nil(t, s)
}

// TestStoreDownFailsFastAndRecovers: the first subscription of a Store, and
// the lock operations, fail while the server is down, and work after it is
// back. (The shared TestStore/StoreDownFailsFastAndRecovers covers a Store
// with a subscription open.)
func TestStoreDownFailsFastAndRecovers(t *testing.T) {
	srv := redistest.Start(t)
	s, _ := newStore(t, srv, Options{})
	ctx := ctxT(t)
	_, err := s.Acquire(ctx, req("a", "alice", time.Minute))
	require.NoError(t, err)

	srv.Stop()
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err = s.Acquire(short, req("a", "bob", time.Minute))
	assert.Error(t, err)
	_, _, err = s.Release(short, "a", "alice", "")
	assert.Error(t, err)
	_, err = s.Subscribe(short, "a", "t")
	assert.Error(t, err, "subscribing to a stopped server succeeded")

	srv.Restart(t)
	require.Eventually(t, func() bool {
		res, err := s.Acquire(ctx, req("a", "bob", time.Minute))
		return err == nil && res.Acquired
	}, patience, 10*time.Millisecond, "acquire after the restart")
	sub, err := s.Subscribe(ctx, "a", "t")
	require.NoError(t, err)
	defer sub.Close()
	res, err := s.Acquire(ctx, req("a", "carol", time.Minute)) // a waiter's attempt: the release wakes waiters
	require.NoError(t, err)
	require.False(t, res.Acquired)
	_, _, err = s.Release(ctx, "a", "bob", "")
	require.NoError(t, err)
	woken(t, sub, "a release after the restart")
}

// TestNoBlindRetryOfARelease: when the connection drops after the server
// ran a release but before the reply arrived, go-redis must not send the
// release again (its MaxRetries would), which would undo a second hold.
func TestNoBlindRetryOfARelease(t *testing.T) {
	srv := redistest.Start(t)
	direct, _ := newStore(t, srv, Options{})
	ctx := ctxT(t)
	for range 2 {
		_, err := direct.Acquire(ctx, driver.AcquireRequest{Name: "a", Owner: "alice", Ticket: token.New(), Lease: time.Minute})
		require.NoError(t, err)
	}
	_, _, err := direct.Release(ctx, "other", "alice", "") // load the script
	require.NoError(t, err)

	proxy := replyDropper(t, srv.Addr)
	c := redis.NewClient(&redis.Options{Addr: proxy, MaxRetries: 3, ContextTimeoutEnabled: true})
	defer c.Close()
	s, err := New(c, Options{})
	require.NoError(t, err)
	defer s.Close()
	_, _, err = s.Release(ctx, "a", "alice", "")
	require.Error(t, err, "the reply was not dropped")

	st, err := direct.Inspect(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, 1, st.Count, "the release ran more than once")
}

// replyDropper is a proxy to addr that, the first time a client sends an
// EVALSHA, passes it to the server, swallows the reply and closes the
// client's connection.
func replyDropper(t *testing.T, addr string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var once atomic.Bool
	var wg sync.WaitGroup
	t.Cleanup(func() {
		_ = l.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			client, err := l.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", addr)
			if err != nil {
				_ = client.Close()
				continue
			}
			var swallow atomic.Bool
			wg.Add(2)
			go func() { // client to server
				defer wg.Done()
				defer server.Close()
				buf := make([]byte, 64<<10)
				for {
					n, err := client.Read(buf)
					if err != nil {
						return
					}
					if bytes.Contains(bytes.ToLower(buf[:n]), []byte("evalsha")) && once.CompareAndSwap(false, true) {
						swallow.Store(true) // before the server can answer
					}
					if _, err := server.Write(buf[:n]); err != nil {
						return
					}
				}
			}()
			go func() { // server to client
				defer wg.Done()
				defer client.Close()
				buf := make([]byte, 64<<10)
				for {
					n, err := server.Read(buf)
					if err != nil || swallow.Load() {
						return // the reply, if any, is dropped with the connection
					}
					if _, err := client.Write(buf[:n]); err != nil {
						return
					}
				}
			}()
		}
	}()
	return l.Addr().String()
}
