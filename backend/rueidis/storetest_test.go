package rueidisbackend

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
			return storetest.Fixture{Store: s, Layout: s.layout, Publish: s.publish, Requests: &c.n}
		},
		Admin: func(t *testing.T, srv *redistest.Server) storetest.Do {
			c := newClient(t, srv)
			return func(ctx context.Context, args ...string) (any, error) {
				return c.Do(ctx, c.B().Arbitrary(args[0]).Args(args[1:]...).Build()).ToAny()
			}
		},
	})
}
