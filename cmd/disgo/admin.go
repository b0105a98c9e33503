package main

import (
	"context"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"
)

// admin is what disgo sends besides the lock scripts, through the client of
// the chosen adapter: the connection check, the Cluster check, SCAN on
// every master.
type admin interface {
	Ping(ctx context.Context) error
	// ClusterEnabled reports cluster_enabled:1 in INFO cluster.
	ClusterEnabled(ctx context.Context) (bool, error)
	// Scan calls fn with every key matching the SCAN pattern match, on
	// every master of a Cluster (fn is called from one goroutine at a
	// time; a key may be reported twice).
	Scan(ctx context.Context, match string, fn func(key string)) error
	// Exists counts the keys that exist (all of one slot).
	Exists(ctx context.Context, keys ...string) (int64, error)
	// HMGet returns the values of the fields of the hash key, "" for a
	// missing one.
	HMGet(ctx context.Context, key string, fields ...string) ([]string, error)
}

// scanCount is the COUNT hint of each SCAN call.
const scanCount = 500

type goredisAdmin struct{ c redis.UniversalClient }

func (g goredisAdmin) Ping(ctx context.Context) error { return g.c.Ping(ctx).Err() }

func (g goredisAdmin) ClusterEnabled(ctx context.Context) (bool, error) {
	info, err := g.c.Info(ctx, "cluster").Result()
	return strings.Contains(info, "cluster_enabled:1"), err
}

func (g goredisAdmin) Exists(ctx context.Context, keys ...string) (int64, error) {
	return g.c.Exists(ctx, keys...).Result()
}

func (g goredisAdmin) HMGet(ctx context.Context, key string, fields ...string) ([]string, error) {
	vs, err := g.c.HMGet(ctx, key, fields...).Result()
	if err != nil {
		return nil, err
	}
	out := make([]string, len(fields))
	for i, v := range vs {
		if i < len(out) {
			out[i], _ = v.(string)
		}
	}
	return out, nil
}

func (g goredisAdmin) Scan(ctx context.Context, match string, fn func(string)) error {
	var mu sync.Mutex
	scan := func(ctx context.Context, c redis.Cmdable) error {
		it := c.Scan(ctx, 0, match, scanCount).Iterator()
		for it.Next(ctx) {
			mu.Lock()
			fn(it.Val())
			mu.Unlock()
		}
		return it.Err()
	}
	if cc, ok := g.c.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return scan(ctx, c) })
	}
	return scan(ctx, g.c)
}

type rueidisAdmin struct{ c rueidis.Client }

func (r rueidisAdmin) Ping(ctx context.Context) error {
	return r.c.Do(ctx, r.c.B().Ping().Build()).Error()
}

func (r rueidisAdmin) ClusterEnabled(ctx context.Context) (bool, error) {
	info, err := r.c.Do(ctx, r.c.B().Info().Section("cluster").Build()).ToString()
	return strings.Contains(info, "cluster_enabled:1"), err
}

func (r rueidisAdmin) Exists(ctx context.Context, keys ...string) (int64, error) {
	return r.c.Do(ctx, r.c.B().Exists().Key(keys...).Build()).AsInt64()
}

func (r rueidisAdmin) HMGet(ctx context.Context, key string, fields ...string) ([]string, error) {
	vs, err := r.c.Do(ctx, r.c.B().Hmget().Key(key).Field(fields...).Build()).ToArray()
	if err != nil {
		return nil, err
	}
	out := make([]string, len(fields))
	for i, v := range vs {
		if i < len(out) && !v.IsNil() {
			out[i], _ = v.ToString()
		}
	}
	return out, nil
}

func (r rueidisAdmin) Scan(ctx context.Context, match string, fn func(string)) error {
	clients := map[string]rueidis.Client{"": r.c}
	if r.c.Mode() == rueidis.ClientModeCluster {
		// Nodes may include replicas: their keys are their masters', and
		// the caller ignores repeats.
		clients = r.c.Nodes()
	}
	for _, c := range clients {
		var cursor uint64
		for {
			e, err := c.Do(ctx, c.B().Scan().Cursor(cursor).Match(match).Count(scanCount).Build()).AsScanEntry()
			if err != nil {
				return err
			}
			for _, k := range e.Elements {
				fn(k)
			}
			if cursor = e.Cursor; cursor == 0 {
				break
			}
		}
	}
	return nil
}
