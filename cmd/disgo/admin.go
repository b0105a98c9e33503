package main

import (
	"context"
	"errors"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"

	"github.com/disgolock/disgo/internal/rediscore"
)

// admin is what disgo sends besides the lock scripts, through the client of
// the chosen adapter: the connection check, the Cluster check, SCAN on
// every master, and the force-release transaction.
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
	// Delete runs, in one MULTI/EXEC transaction on the lock's slot: GET
	// lockKey, DEL lockKey, SPUBLISH channel "*", PUBLISH channel "*". It
	// returns the record it deleted, or ok false when there was none.
	Delete(ctx context.Context, lockKey, channel string) (record string, ok bool, err error)
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

func (g goredisAdmin) Delete(ctx context.Context, lockKey, channel string) (string, bool, error) {
	var get *redis.StringCmd
	_, err := g.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		get = p.Get(ctx, lockKey)
		p.Del(ctx, lockKey)
		p.SPublish(ctx, channel, rediscore.Broadcast)
		p.Publish(ctx, channel, rediscore.Broadcast)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return "", false, err
	}
	v, err := get.Result()
	if errors.Is(err, redis.Nil) {
		return "", false, nil
	}
	return v, err == nil, err
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

func (r rueidisAdmin) Delete(ctx context.Context, lockKey, channel string) (string, bool, error) {
	var rec string
	var ok bool
	err := r.c.Dedicated(func(c rueidis.DedicatedClient) error {
		res := c.DoMulti(ctx,
			c.B().Multi().Build(),
			c.B().Get().Key(lockKey).Build(),
			c.B().Del().Key(lockKey).Build(),
			c.B().Spublish().Channel(channel).Message(rediscore.Broadcast).Build(),
			c.B().Publish().Channel(channel).Message(rediscore.Broadcast).Build(),
			c.B().Exec().Build(),
		)
		for _, x := range res[:5] {
			if err := x.Error(); err != nil {
				return err
			}
		}
		replies, err := res[5].ToArray()
		if err != nil {
			return err
		}
		if len(replies) != 4 {
			return errors.New("EXEC: unexpected reply")
		}
		rec, err = replies[0].ToString()
		if rueidis.IsRedisNil(err) {
			return nil
		}
		ok = err == nil
		return err
	})
	return rec, ok, err
}
