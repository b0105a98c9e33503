package memory_test

import (
	"context"
	"fmt"
	"time"

	"github.com/disgolock/disgo/backend/memory"
	"github.com/disgolock/disgo/locker"
)

// Two "processes" share one in-memory store: the second waits for the lock
// and gets it when the first releases it.
func Example() {
	ctx := context.Background()
	store := memory.New()
	a, _ := locker.New(store.Client(), locker.Options[string]{Namespace: "app"})
	defer a.Close()
	b, _ := locker.New(store.Client(), locker.Options[string]{Namespace: "app"})
	defer b.Close()

	held, err := a.Lock(ctx, "report", 0, time.Minute)
	if err != nil {
		fmt.Println(err)
		return
	}
	got := make(chan *locker.Lock[string])
	go func() {
		h, err := b.Lock(ctx, "report", 10*time.Second, time.Minute)
		if err != nil {
			fmt.Println(err)
		}
		got <- h
	}()
	time.Sleep(10 * time.Millisecond) // let b start waiting
	fmt.Println("a releases:", held.Release(ctx))
	h := <-got
	fmt.Println("b holds", h.Name(), "with a newer fence:", h.Fence() > held.Fence())
	fmt.Println("b releases:", h.Release(ctx))
	fmt.Println("keys left:", len(store.Keys("app:")))
	// Output:
	// a releases: <nil>
	// b holds app:report with a newer fence: true
	// b releases: <nil>
	// keys left: 0
}

// A client that is killed while holding a lock behaves like a crashed
// process: its lock stays until the lease ends, then another client gets it.
func ExampleClient_Kill() {
	ctx := context.Background()
	store := memory.New()
	dying := store.Client()
	a, _ := locker.New(dying, locker.Options[string]{})
	defer a.Close()
	b, _ := locker.New(store.Client(), locker.Options[string]{})
	defer b.Close()

	if _, err := a.Lock(ctx, "job", 0, 100*time.Millisecond); err != nil {
		fmt.Println(err)
		return
	}
	dying.Kill()
	h, err := b.Lock(ctx, "job", 10*time.Second, time.Minute)
	fmt.Println("taken over after the lease:", err == nil)
	fmt.Println(h.Release(ctx))
	// Output:
	// taken over after the lease: true
	// <nil>
}
