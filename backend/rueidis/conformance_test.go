package rueidisbackend_test

import (
	"context"
	"strings"
	"testing"

	"github.com/redis/rueidis"

	rueidisbackend "github.com/disgolock/disgo/backend/rueidis"
	"github.com/disgolock/disgo/conformance"
	"github.com/disgolock/disgo/internal/killable"
	"github.com/disgolock/disgo/internal/rediscore"
	"github.com/disgolock/disgo/internal/redistest"
	"github.com/disgolock/disgo/internal/tcpproxy"
)

// TestConformance runs the conformance suite on one redis-server. Every
// client is a rueidis.Client of its own, connected through a TCP proxy of
// its own (which stalls it), with a Store on it. (TestCluster runs it on a
// Redis Cluster.)
func TestConformance(t *testing.T) {
	addr := redistest.Start(t).Addr
	runConformance(t, connect(t, addr), func(t testing.TB) harnessClient {
		p := tcpproxy.Start(t, addr)
		return harnessClient{connect(t, p.Addr()), func() func() { return tcpproxy.Stall(p) }}
	})
}

// harnessClient is a client of the conformance harness and its stall hook.
type harnessClient struct {
	c     rueidis.Client
	stall func() (resume func()) // Client.Stall, or nil
}

// connect returns a rueidis client of the servers at addrs (a cluster
// client when they are cluster nodes), for the caller to close.
func connect(t testing.TB, addrs ...string) rueidis.Client {
	return connectWith(t, rueidis.ClientOption{InitAddress: addrs})
}

// connectWith returns a rueidis client made with o, for the caller to close.
func connectWith(t testing.TB, o rueidis.ClientOption) rueidis.Client {
	c, err := rueidis.NewClient(o)
	if err != nil {
		t.Fatalf("rueidis.NewClient: %v", err)
	}
	return c
}

// runConformance runs the suite with a Store on a new client from
// newClient for every conformance client. admin (closed at cleanup) lists
// and wipes keys.
func runConformance(t *testing.T, admin rueidis.Client, newClient func(t testing.TB) harnessClient) {
	t.Cleanup(admin.Close)
	layout := rediscore.Layout{Prefix: rediscore.DefaultPrefix}

	conformance.Run(t, conformance.Harness{
		NewClient: func(t testing.TB) conformance.Client {
			hc := newClient(t)
			c := hc.c
			s, err := rueidisbackend.New(c, rueidisbackend.Options{})
			if err != nil {
				t.Fatalf("rueidisbackend.New: %v", err)
			}
			k := killable.New(s)
			// Every later call fails first, then the client and the Store
			// close: closing the Store wakes its waiters, whose next call
			// must not get through. A closed rueidis cluster client does
			// not fail every later call by itself: the close of each
			// connection starts a topology refresh, which may dial the
			// nodes again, and later calls then succeed.
			closeAll := func() {
				c.Close()
				_ = s.Close()
			}
			kill := func() {
				k.Kill()
				closeAll()
			}
			t.Cleanup(closeAll) // before the proxies close (registered earlier)
			return conformance.Client{Backend: k, Kill: kill, Stall: hc.stall, Subscriptions: s.ActiveSubscriptions}
		},
		Keys: func(ctx context.Context, substr string) ([]string, error) {
			tag := rediscore.Tag(substr) // the name as keys spell it, inside braces
			all, err := scanKeys(ctx, admin)
			var keys []string
			for _, k := range all {
				if strings.Contains(k, tag[1:len(tag)-1]) && !isFence(k) {
					keys = append(keys, k)
				}
			}
			return keys, err
		},
		Wipe: func(ctx context.Context, name string) error {
			// One command: the keys share a slot.
			return admin.Do(ctx, admin.B().Del().Key(allKeys(layout, name)...).Build()).Error()
		},
	})
}

// scanKeys lists the keys of every node c knows (the server of a
// standalone client).
func scanKeys(ctx context.Context, c rueidis.Client) ([]string, error) {
	var keys []string
	for _, node := range c.Nodes() {
		for cursor := uint64(0); ; {
			e, err := node.Do(ctx, node.B().Scan().Cursor(cursor).Count(1000).Build()).AsScanEntry()
			if err != nil {
				return keys, err
			}
			keys = append(keys, e.Elements...)
			if cursor = e.Cursor; cursor == 0 {
				break
			}
		}
	}
	return keys, nil
}

// isFence reports whether k is the fence record of a mutex, read-write lock
// or semaphore: fence records outlive the locks on purpose.
func isFence(k string) bool {
	return strings.HasSuffix(k, ":fence") || strings.HasSuffix(k, ":rw.f") || strings.HasSuffix(k, ":sem.f")
}

// allKeys returns the keys of the mutex, read-write lock and semaphore of
// name.
func allKeys(l rediscore.Layout, name string) []string {
	keys := l.Keys(name)
	keys = append(keys, l.KindKeys(rediscore.RW, name)...)
	return append(keys, l.KindKeys(rediscore.Semaphore, name)...)
}
