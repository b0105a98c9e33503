package rueidisbackend

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/disgolock/disgo/internal/redisstore"
	"github.com/disgolock/disgo/internal/redistest"
	"github.com/disgolock/disgo/internal/storetest"
	"github.com/disgolock/disgo/internal/token"
	"github.com/disgolock/disgo/locker/driver"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// A rueidis cluster client leaves these behind after Close, and
		// they end on their own: the close of connections its topology
		// refresh replaced (5 s later), and a delayed refresh.
		goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*clusterClient)._refresh.func2"),
		goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*call).DelayDo.func1"),
	)
}

// patience bounds every wait of these tests; reaching it is a failure.
const patience = 10 * time.Second

// newClient returns a client of srv, closed when the test ends.
func newClient(t testing.TB, srv *redistest.Server) rueidis.Client {
	t.Helper()
	return newAuthClient(t, srv, "", "")
}

// newAuthClient returns a client of srv authenticated as user (the default
// user when empty), closed when the test ends.
func newAuthClient(t testing.TB, srv *redistest.Server, user, password string) rueidis.Client {
	t.Helper()
	c, err := rueidis.NewClient(rueidis.ClientOption{
		Username:          user,
		Password:          password,
		InitAddress:       []string{srv.Addr},
		ForceSingleClient: true,
		DisableCache:      true,
		Dialer:            net.Dialer{Timeout: time.Second}, // short attempts at a stopped server
	})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

// newStore returns a Store on a new counting client of srv, both closed
// when the test ends.
func newStore(t testing.TB, srv *redistest.Server, opts Options) (*Store, *counting) {
	t.Helper()
	c := &counting{Client: newClient(t, srv)}
	s, err := New(c, opts)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s, c
}

// counting is a client that counts its round trips: each Do (Single) and
// each DoMulti (Batches) is one.
type counting struct {
	rueidis.Client
	n storetest.Requests
}

func (c *counting) Do(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	c.n.Single.Add(1)
	return c.Client.Do(ctx, cmd)
}

func (c *counting) DoMulti(ctx context.Context, cmds ...rueidis.Completed) []rueidis.RedisResult {
	c.n.Batches.Add(1)
	return c.Client.DoMulti(ctx, cmds...)
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	t.Cleanup(cancel)
	return ctx
}

func req(name, owner string, lease time.Duration) driver.AcquireRequest {
	return driver.AcquireRequest{Name: name, Owner: owner, Ticket: token.New(), Lease: lease}
}

// do runs one command built by the caller on c and returns its result.
func do(t testing.TB, c rueidis.Client, build func(rueidis.Builder) rueidis.Completed) rueidis.RedisResult {
	t.Helper()
	return c.Do(ctxT(t), build(c.B()))
}

// woken waits for a wake-up of sub.
func woken(t testing.TB, sub driver.Subscription, what string) {
	t.Helper()
	select {
	case <-sub.Wake():
	case <-time.After(patience):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// publish sends message on name's channel through c, the way the scripts
// of s do.
func publish(t testing.TB, c rueidis.Client, s *Store, name, message string) error {
	t.Helper()
	return do(t, c, func(b rueidis.Builder) rueidis.Completed {
		return b.Arbitrary(redisstore.Settings(s).Publish).Args(redisstore.Settings(s).Layout.Channel(name), message).Build()
	}).Error()
}
