package redisstore_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/disgolock/disgo/backend/goredis"
	rueidisbackend "github.com/disgolock/disgo/backend/rueidis"
	"github.com/disgolock/disgo/internal/redisstore"
	"github.com/disgolock/disgo/internal/redistest"
	"github.com/disgolock/disgo/internal/token"
	"github.com/disgolock/disgo/locker/driver"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// A rueidis cluster client (TestKindCluster) leaves these behind
		// after Close, and they end on their own: the close of connections
		// its topology refresh replaced (5 s later), and a delayed refresh.
		goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*clusterClient)._refresh.func2"),
		goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*call).DelayDo.func1"),
	)
}

// patience bounds every wait of these tests; reaching it is a failure.
const patience = 10 * time.Second

// adapters make a Store of each Redis adapter on a new client of the
// server at addr, closed when the test ends.
var adapters = []struct {
	name string
	new  func(t *testing.T, addr string, opts redisstore.Options) (*redisstore.Store, error)
}{
	{"goredis", func(t *testing.T, addr string, opts redisstore.Options) (*redisstore.Store, error) {
		c := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Second, ContextTimeoutEnabled: true})
		t.Cleanup(func() { _ = c.Close() })
		return goredis.New(c, opts)
	}},
	{"rueidis", func(t *testing.T, addr string, opts redisstore.Options) (*redisstore.Store, error) {
		c, err := rueidis.NewClient(rueidis.ClientOption{
			InitAddress: []string{addr}, ForceSingleClient: true, DisableCache: true,
			Dialer: net.Dialer{Timeout: time.Second},
		})
		require.NoError(t, err)
		t.Cleanup(c.Close)
		return rueidisbackend.New(c, opts)
	}},
}

// forEachAdapter runs test as a subtest per adapter, each on a
// redis-server of its own.
func forEachAdapter(t *testing.T, test func(t *testing.T, s *redisstore.Store)) {
	for _, a := range adapters {
		t.Run(a.name, func(t *testing.T) {
			s, err := a.new(t, redistest.Start(t).Addr, redisstore.Options{})
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, s.Close()) })
			test(t, s)
		})
	}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	t.Cleanup(cancel)
	return ctx
}

func req(name, owner string) driver.AcquireRequest {
	return driver.AcquireRequest{Name: name, Owner: owner, Ticket: token.New(), Lease: time.Minute}
}
