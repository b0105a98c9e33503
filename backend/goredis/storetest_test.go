package goredis

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/internal/redisstore"
	"github.com/disgolock/disgo/internal/redistest"
	"github.com/disgolock/disgo/internal/storetest"
)

// TestStore runs the Store tests the Redis adapters share.
func TestStore(t *testing.T) {
	storetest.RunRedis(t, storetest.RedisHarness{
		Open: func(t *testing.T, srv *redistest.Server, opts storetest.Options) storetest.Fixture {
			c := redis.NewClient(&redis.Options{Addr: srv.Addr, DialTimeout: time.Second, ContextTimeoutEnabled: true,
				Username: opts.Username, Password: opts.Password})
			t.Cleanup(func() { _ = c.Close() })
			s, err := New(c, Options{Prefix: opts.Prefix, ClassicPubSub: opts.ClassicPubSub})
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, s.Close()) })
			n := &storetest.Requests{}
			c.AddHook(counter{n})
			return storetest.Fixture{Store: s, Layout: redisstore.Settings(s).Layout, Publish: redisstore.Settings(s).Publish, Requests: n}
		},
		Admin: func(t *testing.T, srv *redistest.Server) storetest.Do {
			c := newClient(t, srv)
			return func(ctx context.Context, args ...string) (any, error) {
				a := make([]any, len(args))
				for i, arg := range args {
					a[i] = arg
				}
				return c.Do(ctx, a...).Result()
			}
		},
	})
}
