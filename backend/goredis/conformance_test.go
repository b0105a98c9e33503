package goredis_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/disgolock/disgo/backend/goredis"
	"github.com/disgolock/disgo/conformance"
	"github.com/disgolock/disgo/internal/rediscore"
	"github.com/disgolock/disgo/internal/redistest"
	"github.com/disgolock/disgo/internal/tcpproxy"
)

// TestConformance runs the conformance suite on one redis-server. Every
// client is a redis.Client of its own, connected through a TCP proxy of
// its own (which stalls it), with a Store on it. (TestCluster runs it on a
// Redis Cluster.)
func TestConformance(t *testing.T) {
	srv := redistest.Start(t)
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = admin.Close() })
	runConformance(t, admin, func(t testing.TB) harnessClient {
		p := tcpproxy.Start(t, srv.Addr)
		c := redis.NewClient(&redis.Options{
			Addr: p.Addr(), ContextTimeoutEnabled: true, DialTimeout: time.Second,
			ReadTimeout: stalledReadTimeout, WriteTimeout: stalledReadTimeout,
		})
		return harnessClient{c, func() func() { return tcpproxy.Stall(p) }, func() { _ = p.Close() }}
	})
}

// harnessClient is a client of the conformance harness with the hooks of
// its connections.
type harnessClient struct {
	c     redis.UniversalClient
	stall func() (resume func()) // Client.Stall, or nil
	cut   func()                 // cuts the client's connections off at once (its proxies), or nil
}

// stalledReadTimeout bounds the reads and writes of the proxied clients:
// longer than any stall of the suite, so that a call held back by a stall
// is late, not failed (the Lockers' RequestTimeout bounds it anyway).
const stalledReadTimeout = 10 * time.Second

// runConformance runs the suite with a Store on a new client from
// newClient for every conformance client. admin lists and wipes keys.
func runConformance(t *testing.T, admin redis.UniversalClient, newClient func(t testing.TB) harnessClient) {
	layout := rediscore.Layout{Prefix: rediscore.DefaultPrefix}
	conformance.Run(t, conformance.Harness{
		NewClient: func(t testing.TB) conformance.Client {
			hc := newClient(t)
			c := hc.c
			s, err := goredis.New(c, goredis.Options{})
			if err != nil {
				t.Fatalf("goredis.New: %v", err)
			}
			// The client first, then the Store: closing the Store wakes its
			// waiters, whose next call must not get through. Kill cuts the
			// connections off before: a closed client may still send.
			closeAll := func() {
				_ = c.Close()
				_ = s.Close()
			}
			kill := func() {
				if hc.cut != nil {
					hc.cut()
				}
				closeAll()
			}
			// Before the proxies close (registered earlier): cutting the
			// connections of a live client would make it start
			// reconnecting in goroutines that outlive the test.
			t.Cleanup(closeAll)
			return conformance.Client{Backend: s, Kill: kill, Stall: hc.stall, Subscriptions: s.ActiveSubscriptions}
		},
		Keys: func(ctx context.Context, substr string) ([]string, error) {
			tag := rediscore.Tag(substr) // the name as keys spell it, inside braces
			keys, err := scanKeys(ctx, admin, "*"+globEscaper.Replace(tag[1:len(tag)-1])+"*")
			var out []string
			for _, k := range keys {
				if !isFence(k) {
					out = append(out, k)
				}
			}
			return out, err
		},
		Wipe: func(ctx context.Context, name string) error {
			return admin.Del(ctx, allKeys(layout, name)...).Err() // one slot: the keys share a hash tag
		},
	})
}

// scanKeys lists the keys matching pattern on a server, or on every master
// of a cluster.
func scanKeys(ctx context.Context, c redis.UniversalClient, pattern string) ([]string, error) {
	scan := func(ctx context.Context, c *redis.Client) ([]string, error) {
		var keys []string
		iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		return keys, iter.Err()
	}
	cc, ok := c.(*redis.ClusterClient)
	if !ok {
		return scan(ctx, c.(*redis.Client))
	}
	var mu sync.Mutex
	var all []string
	err := cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		keys, err := scan(ctx, node)
		mu.Lock()
		defer mu.Unlock()
		all = append(all, keys...)
		return err
	})
	return all, err
}

// globEscaper quotes the characters SCAN MATCH treats as a pattern.
var globEscaper = strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`, `]`, `\]`)

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
