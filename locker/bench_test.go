package locker_test

import (
	"context"
	"github.com/disgolock/disgo/internal/token"
	"github.com/disgolock/disgo/locker/driver"
	"net"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"

	"github.com/disgolock/disgo/backend/goredis"
	"github.com/disgolock/disgo/backend/memory"
	rueidisbackend "github.com/disgolock/disgo/backend/rueidis"
	"github.com/disgolock/disgo/internal/redistest"
	"github.com/disgolock/disgo/locker"
)

// BenchmarkLockUnlock measures one uncontended lock+unlock on one key, one
// goroutine, through the facade: TryLock (fixed lease, expiry timer) and
// LockWithRenewal (reentrant, fenced, auto-renewed; what lockbench's
// uncontended scenario runs), in both modes, on the memory store and on a
// redis-server of its own through each Redis adapter. Backend is the floor
// under the facade: the store's Acquire and Release called directly (the
// same two round trips). The difference between a facade run and Backend
// is the client-side cost of the facade.
//
//	go test -run '^$' -bench LockUnlock -benchmem ./locker/
func BenchmarkLockUnlock(b *testing.B) {
	srv := redistest.Start(b)
	stores := []struct {
		name string
		open func(b *testing.B) driver.Backend
	}{
		{"memory", func(*testing.B) driver.Backend { return memory.New() }},
		{"goredis", func(b *testing.B) driver.Backend {
			c := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true})
			s, err := goredis.New(c, goredis.Options{})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = s.Close(); _ = c.Close() })
			return s
		}},
		{"rueidis", func(b *testing.B) driver.Backend {
			c, err := rueidis.NewClient(rueidis.ClientOption{
				InitAddress: []string{srv.Addr},
				Dialer:      net.Dialer{Timeout: time.Second},
			})
			if err != nil {
				b.Fatal(err)
			}
			s, err := rueidisbackend.New(c, rueidisbackend.Options{})
			if err != nil {
				c.Close()
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = s.Close(); c.Close() })
			return s
		}},
	}
	ctx := context.Background()
	for _, st := range stores {
		b.Run(st.name+"/driver.Backend", func(b *testing.B) {
			s := st.open(b)
			req := driver.AcquireRequest{Name: "bench", Owner: locker.NewOwner(), Ticket: token.New(), Lease: time.Minute}
			b.ReportAllocs()
			for b.Loop() {
				if res, err := s.Acquire(ctx, req); err != nil || !res.Acquired {
					b.Fatalf("acquire: %+v, %v", res, err)
				}
				if held, _, err := s.Release(ctx, req.Name, req.Owner, ""); err != nil || !held {
					b.Fatalf("release: held %v, %v", held, err)
				}
			}
		})
		for _, mode := range []locker.Mode{locker.Fair, locker.Barging} {
			for _, call := range []struct {
				name string
				lock func(*locker.Locker[string]) (*locker.Lock[string], error)
			}{
				{"TryLock", func(lk *locker.Locker[string]) (*locker.Lock[string], error) {
					return lk.TryLock(ctx, "bench", time.Minute)
				}},
				{"LockWithRenewal", func(lk *locker.Locker[string]) (*locker.Lock[string], error) {
					return lk.LockWithRenewal(ctx, "bench", locker.WaitForever)
				}},
			} {
				b.Run(st.name+"/"+mode.String()+"/"+call.name, func(b *testing.B) {
					lk, err := locker.New(st.open(b), locker.Options[string]{Mode: mode})
					if err != nil {
						b.Fatal(err)
					}
					b.Cleanup(func() { _ = lk.Close() })
					b.ReportAllocs()
					for b.Loop() {
						h, err := call.lock(lk)
						if err != nil {
							b.Fatalf("lock: %v", err)
						}
						if err := h.Release(ctx); err != nil {
							b.Fatalf("release: %v", err)
						}
					}
				})
			}
		}
	}
}
