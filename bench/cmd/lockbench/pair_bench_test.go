package main

import (
	"context"
	"fmt"
	"github.com/disgolock/disgo/internal/token"
	"github.com/disgolock/disgo/locker/driver"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/disgolock/disgo/backend/goredis"
	"github.com/disgolock/disgo/bench/internal/redisproc"
	"github.com/disgolock/disgo/locker"
)

// BenchmarkPair measures one lock+unlock pair of the implementations that
// sit on the same go-redis client (disgo's go-redis adapter through the
// facade with LockWithRenewal, its Store called directly, bsm/redislock,
// redsync, the two-command baseline and the go-redis script floors, the
// AutoPipeliner's included), and of disgo's rueidis adapter next to its own
// floor (floor-2script-rueidis, the same commands without logic on a
// rueidis client), on one goroutine and in parallel on distinct keys, on a
// redis-server of its own. It is the place to take CPU and allocation
// profiles of the client side:
//
//	go test -run '^$' -bench Pair -benchmem -cpuprofile cpu.out -memprofile mem.out ./cmd/lockbench/
func BenchmarkPair(b *testing.B) {
	srv, err := redisproc.Start(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Stop)
	impls := slices.DeleteFunc(allImpls(time.Millisecond), func(i Impl) bool {
		return !slices.Contains([]string{"disgo-goredis-fair", "disgo-goredis-barging", "disgo-rueidis-fair", floor2ScriptRueidis, "redislock", "redsync", "baseline-2rtt", floor2Script, floor2ScriptPiped, floorEmptyScripts}, i.Name)
	})
	impls = append(impls, Impl{Name: "disgo-goredis-store", Open: func(addr string, _ openOpts) (Instance, error) {
		c := newGoRedis(addr)
		s, err := goredis.New(c, goredis.Options{})
		if err != nil {
			return nil, err
		}
		return &storeInst{s: s, closeClient: c.Close, owner: locker.NewOwner()}, nil
	}})
	for _, impl := range impls {
		for _, par := range []bool{false, true} {
			name := impl.Name + "/serial"
			if par {
				name = impl.Name + "/parallel"
			}
			b.Run(name, func(b *testing.B) {
				inst, err := impl.Open(srv.Addr, openOpts{})
				if err != nil {
					b.Fatal(err)
				}
				defer inst.Close()
				ctx := context.Background()
				if err := warm(ctx, inst, "pairbench:warm"); err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				// cpu-ns/op: this process's CPU time (all goroutines: the
				// client's own, GC) per pair; steadier than ns/op on a
				// shared machine.
				cpu0 := processCPU()
				defer func() { b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op") }()
				if !par {
					for b.Loop() {
						if err := pair(ctx, inst, "pairbench:serial"); err != nil {
							b.Fatal(err)
						}
					}
					return
				}
				b.SetParallelism(16) // 16 × GOMAXPROCS goroutines, each on its own key
				var id atomic.Int64
				b.RunParallel(func(pb *testing.PB) {
					key := fmt.Sprintf("pairbench:parallel:%d", id.Add(1))
					for pb.Next() {
						if err := pair(ctx, inst, key); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}

// storeInst calls the go-redis Store's Acquire and Release directly: the
// same two round trips as the facade, without it.
type storeInst struct {
	s           *goredis.Store
	closeClient func() error
	owner       string // one per process, as the facade's
}

func (s *storeInst) Lock(ctx context.Context, key string) (Unlock, error) {
	req := driver.AcquireRequest{Name: key, Owner: s.owner, Ticket: token.New(), Lease: 8 * time.Second}
	res, err := s.s.Acquire(ctx, req)
	if err != nil {
		return nil, err
	}
	if !res.Acquired {
		return nil, errTaken
	}
	return func(ctx context.Context) error {
		held, _, err := s.s.Release(ctx, key, req.Owner, "")
		if err == nil && !held {
			err = errTaken
		}
		return err
	}, nil
}

func (s *storeInst) Close() error { _ = s.s.Close(); return s.closeClient() }
