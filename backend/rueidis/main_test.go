package rueidisbackend

import (
	"context"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/disgolock/disgo/fairqueue"
	"github.com/disgolock/disgo/internal/redistest"
	"github.com/disgolock/disgo/locker"
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
	c, err := rueidis.NewClient(rueidis.ClientOption{
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

// counting is a client that counts its round trips: each Do and each
// DoMulti is one.
type counting struct {
	rueidis.Client
	do, multi atomic.Int64
}

func (c *counting) Do(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	c.do.Add(1)
	return c.Client.Do(ctx, cmd)
}

func (c *counting) DoMulti(ctx context.Context, cmds ...rueidis.Completed) []rueidis.RedisResult {
	c.multi.Add(1)
	return c.Client.DoMulti(ctx, cmds...)
}

func (c *counting) reset() { c.do.Store(0); c.multi.Store(0) }

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	t.Cleanup(cancel)
	return ctx
}

func req(name, owner string, lease time.Duration) locker.AcquireRequest {
	return locker.AcquireRequest{Name: name, Owner: owner, Ticket: fairqueue.NewTicket(), Lease: lease}
}

// do runs one command built by the caller on c and returns its result.
func do(t testing.TB, c rueidis.Client, build func(rueidis.Builder) rueidis.Completed) rueidis.RedisResult {
	t.Helper()
	return c.Do(ctxT(t), build(c.B()))
}

// keys lists every key of c's server but the fence records.
func keys(t testing.TB, c rueidis.Client) []string {
	t.Helper()
	var out []string
	var cursor uint64
	for {
		e, err := do(t, c, func(b rueidis.Builder) rueidis.Completed {
			return b.Scan().Cursor(cursor).Count(100).Build()
		}).AsScanEntry()
		require.NoError(t, err)
		for _, k := range e.Elements {
			if !strings.HasSuffix(k, ":fence") {
				out = append(out, k)
			}
		}
		if cursor = e.Cursor; cursor == 0 {
			return out
		}
	}
}

// scriptCalls returns the number of EVALSHA and EVAL commands c's server
// ran, from INFO commandstats (which also counts the commands scripts
// call, so the other counters do not tell round trips).
func scriptCalls(t testing.TB, c rueidis.Client) int64 {
	t.Helper()
	info, err := do(t, c, func(b rueidis.Builder) rueidis.Completed {
		return b.Info().Section("commandstats").Build()
	}).ToString()
	require.NoError(t, err)
	var n int64
	for _, line := range strings.Split(info, "\n") {
		name, stats, _ := strings.Cut(strings.TrimSpace(line), ":")
		if name != "cmdstat_evalsha" && name != "cmdstat_eval" {
			continue
		}
		calls, _, _ := strings.Cut(strings.TrimPrefix(stats, "calls="), ",")
		v, err := strconv.ParseInt(calls, 10, 64)
		require.NoError(t, err, line)
		n += v
	}
	return n
}

// woken waits for a wake-up of sub.
func woken(t testing.TB, sub locker.Subscription, what string) {
	t.Helper()
	select {
	case <-sub.Wake():
	case <-time.After(patience):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// notWoken asserts that sub has no wake-up pending. It is called after an
// event that follows the message in question on the same connection, so
// the message would have arrived by then.
func notWoken(t testing.TB, sub locker.Subscription, what string) {
	t.Helper()
	select {
	case <-sub.Wake():
		t.Fatalf("unexpected wake-up: %s", what)
	default:
	}
}

// probe publishes a message on name's channel and waits until the Store
// delivered it: every message published before has been delivered too (one
// connection delivers in order).
func probe(t testing.TB, s *Store, name string) {
	t.Helper()
	ctx := ctxT(t)
	ticket := fairqueue.NewTicket()
	sub, err := s.Subscribe(ctx, name, ticket)
	require.NoError(t, err)
	defer sub.Close()
	require.NoError(t, publish(t, s.client, s, name, ticket))
	woken(t, sub, "the probe message")
}

// publish sends message on name's channel through c, the way the scripts
// of s do.
func publish(t testing.TB, c rueidis.Client, s *Store, name, message string) error {
	t.Helper()
	return do(t, c, func(b rueidis.Builder) rueidis.Completed {
		return b.Arbitrary(s.publish).Args(s.layout.Channel(name), message).Build()
	}).Error()
}
