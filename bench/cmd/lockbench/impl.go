package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/bsm/redislock"
	"github.com/go-redsync/redsync/v4"
	redsyncgoredis "github.com/go-redsync/redsync/v4/redis/goredis/v9"
	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"
	"github.com/redis/rueidis/rueidislock"
)

// Unlock releases a lock taken by [Instance.Lock].
type Unlock func(ctx context.Context) error

// Instance is one "process" of a lock implementation: its own Redis
// client(s) and locker. It is safe for concurrent use.
type Instance interface {
	// Lock waits until the lock of key is held or ctx is done; the lock
	// outlives ctx.
	Lock(ctx context.Context, key string) (Unlock, error)
	// Close releases the client(s).
	Close() error
}

// gaveUpCounter is implemented by instances whose Lock retries the peer's
// own Lock after it gave up before ctx was done.
type gaveUpCounter interface{ GaveUp() int64 }

// openOpts adjusts an instance for one scenario.
type openOpts struct {
	// renewLease is the lease of disgo's auto-renewed locks; 0 means
	// disgo's default.
	renewLease time.Duration
}

// Impl is one implementation under test.
type Impl struct {
	Name string
	// Renews says that Lock holds the lock with automatic renewal.
	Renews bool
	// Waits says that Lock can wait for a taken lock (false: baseline).
	Waits bool
	// HandOffFloor marks the hand-off floor: it runs in the hand-off
	// scenario only (see floor-publish).
	HandOffFloor bool
	// Note describes the configuration in the output.
	Note string
	Open func(addr string, o openOpts) (Instance, error)
	// disgo is set for disgo's implementations: their store, for the
	// read-write lock and semaphore scenarios.
	disgo *disgoOpen
}

// errTaken is the baseline's answer when the lock is taken: it never waits.
var errTaken = errors.New("taken")

func newGoRedis(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr})
}

// peers returns the implementations other than disgo, and the baseline.
func peers(bsmBackoff time.Duration) []Impl {
	return []Impl{
		{
			Name: "redsync", Waits: true,
			Note: "go-redis pool, default options (expiry 8s, 32 tries, random 50–250 ms retry delay); no auto-renewal",
			Open: func(addr string, _ openOpts) (Instance, error) {
				c := newGoRedis(addr)
				return &redsyncInst{client: c, rs: redsync.New(redsyncgoredis.NewPool(c))}, nil
			},
		},
		{
			Name: "redislock", Waits: true,
			Note: fmt.Sprintf("bsm/redislock, TTL 8s, RetryStrategy LinearBackoff(%v) (its README shows no waiting setup; its examples use 100–500 ms; the shortest poll is its best case); no auto-renewal", bsmBackoff),
			Open: func(addr string, _ openOpts) (Instance, error) {
				c := newGoRedis(addr)
				return &bsmInst{client: c, rl: redislock.New(c), backoff: bsmBackoff}, nil
			},
		},
		{
			Name: "rueidislock", Waits: true, Renews: true,
			Note: "rueidislock defaults (KeyMajority 2 of 3 keys, KeyValidity 5s extended every 2.5s, client-side-caching wake-ups; NoLoopTracking off, so the invalidation of its own extension triggers the next one and a held lock extends back to back: see the held-locks table)",
			Open: func(addr string, _ openOpts) (Instance, error) {
				l, err := rueidislock.NewLocker(rueidislock.LockerOption{ClientOption: rueidis.ClientOption{InitAddress: []string{addr}}})
				if err != nil {
					return nil, err
				}
				return &rueidislockInst{l: l}, nil
			},
		},
		{
			Name: "baseline-2rtt",
			Note: "go-redis SET key NX PX 8000, then DEL: two plain round trips, no safety, no waiting",
			Open: func(addr string, _ openOpts) (Instance, error) {
				return &baselineInst{client: newGoRedis(addr)}, nil
			},
		},
	}
}

type redsyncInst struct {
	client *redis.Client
	rs     *redsync.Redsync
	gaveUp atomic.Int64
}

func (r *redsyncInst) Lock(ctx context.Context, key string) (Unlock, error) {
	m := r.rs.NewMutex(key)
	for {
		err := m.LockContext(ctx)
		switch {
		case err == nil:
			return func(ctx context.Context) error {
				ok, err := m.UnlockContext(ctx)
				if err == nil && !ok {
					err = errors.New("redsync: unlock: not held")
				}
				return err
			}, nil
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case errors.Is(err, redsync.ErrFailed):
			r.gaveUp.Add(1) // all 32 tries failed: call again, as a user would
		default:
			return nil, err
		}
	}
}

func (r *redsyncInst) GaveUp() int64 { return r.gaveUp.Load() }
func (r *redsyncInst) Close() error  { return r.client.Close() }

type bsmInst struct {
	client  *redis.Client
	rl      *redislock.Client
	backoff time.Duration
}

func (b *bsmInst) Lock(ctx context.Context, key string) (Unlock, error) {
	l, err := b.rl.Obtain(ctx, key, 8*time.Second, &redislock.Options{RetryStrategy: redislock.LinearBackoff(b.backoff)})
	if err != nil {
		return nil, err
	}
	return l.Release, nil
}

func (b *bsmInst) Close() error { return b.client.Close() }

type rueidislockInst struct{ l rueidislock.Locker }

// Lock waits in WithContext. The lock's context derives from the one given
// to WithContext, so that one is cancelled only when ctx ends the wait, not
// once the lock is held.
func (r *rueidislockInst) Lock(ctx context.Context, key string) (Unlock, error) {
	lctx, cancel := context.WithCancel(context.Background())
	stop := context.AfterFunc(ctx, cancel)
	_, release, err := r.l.WithContext(lctx, key)
	if !stop() { // ctx ended the wait; a lock taken meanwhile is being dropped
		if err == nil {
			release()
		}
		cancel()
		return nil, ctx.Err()
	}
	if err != nil {
		cancel()
		return nil, err
	}
	return func(context.Context) error {
		release() // returns once the keys are deleted
		cancel()
		return nil
	}, nil
}

func (r *rueidislockInst) Close() error { r.l.Close(); return nil }

type baselineInst struct {
	client *redis.Client
	seq    atomic.Int64
}

func (b *baselineInst) Lock(ctx context.Context, key string) (Unlock, error) {
	ok, err := b.client.SetNX(ctx, key, strconv.FormatInt(b.seq.Add(1), 10), 8*time.Second).Result()
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errTaken
	}
	return func(ctx context.Context) error { return b.client.Del(ctx, key).Err() }, nil
}

func (b *baselineInst) Close() error { return b.client.Close() }
