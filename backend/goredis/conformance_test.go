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
)

// TestConformance runs the conformance suite on one redis-server. Every
// client is a redis.Client of its own with a Store on it. (TestCluster
// runs it on a Redis Cluster.)
func TestConformance(t *testing.T) {
	srv := redistest.Start(t)
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = admin.Close() })
	runConformance(t, admin, func() redis.UniversalClient {
		return redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true, DialTimeout: time.Second})
	})
}

// runConformance runs the suite with a Store on a new client from
// newClient for every conformance client; admin lists and wipes keys.
func runConformance(t *testing.T, admin redis.UniversalClient, newClient func() redis.UniversalClient) {
	layout := rediscore.Layout{Prefix: rediscore.DefaultPrefix}
	conformance.Run(t, conformance.Harness{
		NewClient: func(t testing.TB) conformance.Client {
			c := newClient()
			s, err := goredis.New(c, goredis.Options{})
			if err != nil {
				t.Fatalf("goredis.New: %v", err)
			}
			// The client first, so that every later call fails: closing the
			// Store wakes its waiters, whose next call must not get through.
			kill := func() {
				_ = c.Close()
				_ = s.Close()
			}
			t.Cleanup(kill)
			return conformance.Client{Backend: s, Kill: kill}
		},
		Keys: func(ctx context.Context, substr string) ([]string, error) {
			tag := rediscore.Tag(substr) // the name as keys spell it, inside braces
			keys, err := scanKeys(ctx, admin, "*"+globEscaper.Replace(tag[1:len(tag)-1])+"*")
			var out []string
			for _, k := range keys {
				if !strings.HasSuffix(k, ":fence") {
					out = append(out, k)
				}
			}
			return out, err
		},
		Wipe: func(ctx context.Context, name string) error {
			return admin.Del(ctx, layout.Keys(name)...).Err() // one slot: the keys share a hash tag
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
