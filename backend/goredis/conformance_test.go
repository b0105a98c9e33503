package goredis_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/disgolock/disgo/backend/goredis"
	"github.com/disgolock/disgo/conformance"
	"github.com/disgolock/disgo/internal/rediscore"
	"github.com/disgolock/disgo/internal/redistest"
)

// TestConformance runs the conformance suite on one redis-server. Every
// client is a redis.Client of its own with a Store on it.
func TestConformance(t *testing.T) {
	srv := redistest.Start(t)
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = admin.Close() })
	layout := rediscore.Layout{Prefix: rediscore.DefaultPrefix}

	conformance.Run(t, conformance.Harness{
		NewClient: func(t testing.TB) conformance.Client {
			c := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true, DialTimeout: time.Second})
			s, err := goredis.New(c, goredis.Options{})
			if err != nil {
				t.Fatalf("goredis.New: %v", err)
			}
			kill := func() {
				_ = s.Close()
				_ = c.Close()
			}
			t.Cleanup(kill)
			return conformance.Client{Backend: s, Kill: kill}
		},
		Keys: func(ctx context.Context, substr string) ([]string, error) {
			tag := rediscore.Tag(substr) // the name as keys spell it, inside braces
			pattern := "*" + globEscaper.Replace(tag[1:len(tag)-1]) + "*"
			var keys []string
			iter := admin.Scan(ctx, 0, pattern, 1000).Iterator()
			for iter.Next(ctx) {
				if k := iter.Val(); !strings.HasSuffix(k, ":fence") {
					keys = append(keys, k)
				}
			}
			return keys, iter.Err()
		},
		Wipe: func(ctx context.Context, name string) error {
			return admin.Del(ctx, layout.Keys(name)...).Err()
		},
	})
}

// globEscaper quotes the characters SCAN MATCH treats as a pattern.
var globEscaper = strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`, `]`, `\]`)
