package goredis

import (
	"context"
	"testing"

	"github.com/disgolock/disgo/internal/redistest"
	"github.com/disgolock/disgo/internal/storetest"
)

// TestStore runs the Store tests the Redis adapters share.
func TestStore(t *testing.T) {
	storetest.Run(t, storetest.Harness{
		Open: func(t *testing.T, srv *redistest.Server, opts storetest.Options) storetest.Fixture {
			s, c := newStore(t, srv, Options{Prefix: opts.Prefix, ClassicPubSub: opts.ClassicPubSub})
			n := &storetest.Requests{}
			c.AddHook(counter{n})
			return storetest.Fixture{Store: s, Layout: s.layout, Publish: s.publish, Requests: n}
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
