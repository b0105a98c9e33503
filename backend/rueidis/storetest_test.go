package rueidisbackend

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/internal/redisstore"
	"github.com/disgolock/disgo/internal/redistest"
	"github.com/disgolock/disgo/internal/storetest"
)

// TestStore runs the Store tests the Redis adapters share.
func TestStore(t *testing.T) {
	storetest.RunRedis(t, storetest.RedisHarness{
		Open: func(t *testing.T, srv *redistest.Server, opts storetest.Options) storetest.Fixture {
			c := &counting{Client: newAuthClient(t, srv, opts.Username, opts.Password)}
			s, err := New(c, Options{Prefix: opts.Prefix, ClassicPubSub: opts.ClassicPubSub})
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, s.Close()) })
			return storetest.Fixture{Store: s, Layout: redisstore.Settings(s).Layout, Publish: redisstore.Settings(s).Publish, Requests: &c.n}
		},
		Admin: func(t *testing.T, srv *redistest.Server) storetest.Do {
			c := newClient(t, srv)
			return func(ctx context.Context, args ...string) (any, error) {
				return c.Do(ctx, c.B().Arbitrary(args[0]).Args(args[1:]...).Build()).ToAny()
			}
		},
	})
}
