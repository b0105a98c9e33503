// Command demo shows disgo at work: workers that share a lock in FIFO order
// with auto-renewal and fencing tokens, re-entry, and a TryLock that is
// refused. It runs on the in-memory backend by default, so it needs no
// Redis; give -redis host:port to run the same code on Redis.
//
//	go run ./examples/demo
//	go run ./examples/demo -redis 127.0.0.1:6379
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/disgolock/disgo/backend/goredis"
	"github.com/disgolock/disgo/backend/memory"
	"github.com/disgolock/disgo/locker"
	"github.com/disgolock/disgo/locker/driver"
)

func main() {
	addr := flag.String("redis", "", "Redis address (host:port); empty runs on the in-memory backend")
	workers := flag.Int("workers", 4, "number of workers sharing the lock")
	flag.Parse()
	if err := run(*addr, *workers); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(addr string, workers int) error {
	ctx := context.Background()
	var backend driver.Backend = memory.New()
	where := "the in-memory backend"
	if addr != "" {
		client := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
		defer client.Close()
		store, err := goredis.New(client, goredis.Options{Prefix: "disgo-demo"})
		if err != nil {
			return err
		}
		defer store.Close()
		backend, where = store, "Redis at "+addr
	}
	fmt.Println("disgo demo on", where)

	// One Locker per store and namespace; fair (FIFO) mode is the default.
	l, err := locker.New(backend, locker.Options[string]{Namespace: "demo", RenewLease: 2 * time.Second})
	if err != nil {
		return err
	}
	defer l.Close()

	// Workers take turns on one lock, in the order they queued. Each
	// holding gets a larger fencing token, to be checked by the resource.
	var (
		mu        sync.Mutex
		lastFence int64
		errs      = make(chan error, workers)
		wg        sync.WaitGroup
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(w) * 20 * time.Millisecond) // queue in worker order
			h, err := l.LockWithRenewal(ctx, "inventory", 10*time.Second)
			if err != nil {
				errs <- err
				return
			}
			mu.Lock()
			ok := h.Fence() > lastFence
			lastFence = h.Fence()
			mu.Unlock()
			fmt.Printf("worker %d holds %q, fence %d (increasing: %v)\n", w, h.Name(), h.Fence(), ok)
			time.Sleep(50 * time.Millisecond) // the protected work
			errs <- h.Release(ctx)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}

	// Re-entry: the same owner acquires again; each release undoes one.
	outer, err := l.TryLock(ctx, "report", 5*time.Second)
	if err != nil {
		return err
	}
	inner, err := l.TryLock(ctx, "report", 5*time.Second, locker.WithOwner(outer.Owner()))
	if err != nil {
		return err
	}
	fmt.Printf("re-entered %q with the same fence %d\n", inner.Name(), inner.Fence())

	// Another owner is refused while the lock is held.
	if _, err := l.TryLock(ctx, "report", time.Second); errors.Is(err, locker.ErrNotObtained) {
		fmt.Println("another owner's TryLock:", err)
	} else {
		return fmt.Errorf("TryLock by another owner: want ErrNotObtained, got %v", err)
	}
	if err := inner.Release(ctx); err != nil {
		return err
	}
	if err := outer.Release(ctx); err != nil {
		return err
	}
	fmt.Println("released; releasing again says:", outer.Release(ctx))
	return nil
}
