package locker_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/disgolock/disgo/backend/memory"
	"github.com/disgolock/disgo/locker"
)

// The in-memory backend stands in for Redis here; the code is the same
// with backend/goredis.
func Example() {
	ctx := context.Background()
	l, err := locker.New(memory.New(), locker.Options[string]{Namespace: "orders"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer l.Close()

	h, err := l.LockWithRenewal(ctx, "order-42", 5*time.Second)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("holding", h.Name(), "fenced:", h.Fence() > 0)

	// Another owner is refused while it is held.
	_, err = l.TryLock(ctx, "order-42", time.Second)
	fmt.Println(errors.Is(err, locker.ErrNotObtained))

	fmt.Println(h.Release(ctx))
	// Output:
	// holding orders:order-42 fenced: true
	// true
	// <nil>
}

// Re-entry: acquiring with the owner token of a held lock counts up; each
// release counts down.
func ExampleWithOwner() {
	ctx := context.Background()
	l, _ := locker.New(memory.New(), locker.Options[string]{})
	defer l.Close()

	outer, _ := l.TryLock(ctx, "report", time.Minute)
	inner, err := l.TryLock(ctx, "report", time.Minute, locker.WithOwner(outer.Owner()))
	fmt.Println(err, inner.Fence() == outer.Fence())
	fmt.Println(inner.Release(ctx), outer.Release(ctx))
	fmt.Println(errors.Is(outer.Release(ctx), locker.ErrNotHeld))
	// Output:
	// <nil> true
	// <nil> <nil>
	// true
}

type OrderID int

// A domain key type with its own mapping to lock names.
func ExampleNew_keyType() {
	l, err := locker.New(memory.New(), locker.Options[OrderID]{
		Namespace: "orders",
		Key:       func(id OrderID) string { return fmt.Sprintf("%08d", id) },
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer l.Close()
	name, _ := l.Name(42)
	fmt.Println(name)
	// Output: orders:00000042
}

// Waiting is bounded by the wait time and by ctx, with distinct errors.
func ExampleLocker_Lock() {
	ctx := context.Background()
	l, _ := locker.New(memory.New(), locker.Options[string]{})
	defer l.Close()
	h, _ := l.TryLock(ctx, "job", time.Minute)
	defer h.Release(ctx)

	_, err := l.Lock(ctx, "job", 50*time.Millisecond, time.Second)
	fmt.Println("wait elapsed:", errors.Is(err, locker.ErrNotObtained))

	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err = l.Lock(cctx, "job", time.Minute, time.Second)
	fmt.Println("ctx done:", errors.Is(err, context.DeadlineExceeded), errors.Is(err, locker.ErrNotObtained))
	// Output:
	// wait elapsed: true
	// ctx done: true false
}

// Do runs a function under the lock and releases it afterwards. The
// function's context ends if the lock is lost; its fencing token goes with
// every write to the protected resource.
func ExampleLocker_Do() {
	ctx := context.Background()
	l, err := locker.New(memory.New(), locker.Options[string]{Namespace: "jobs"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer l.Close()

	err = l.Do(ctx, "nightly-report", 10*time.Second, func(ctx context.Context, lock *locker.Lock[string]) error {
		fmt.Println("running under", lock.Name(), "fenced:", lock.Fence() > 0)
		select {
		case <-ctx.Done(): // the lock was lost: stop writing
			return context.Cause(ctx)
		default:
			return nil
		}
	})
	fmt.Println("done:", err)
	// Output:
	// running under jobs:nightly-report fenced: true
	// done: <nil>
}
