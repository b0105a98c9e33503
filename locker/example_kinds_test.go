package locker_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/disgolock/disgo/backend/memory"
	"github.com/disgolock/disgo/locker"
)

// Readers share a read-write lock; a writer waits for them, and a reader
// cannot upgrade its read lock.
func ExampleNewRW() {
	ctx := context.Background()
	rw, err := locker.NewRW(memory.New(), locker.Options[string]{Namespace: "docs"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer rw.Close()

	r1, _ := rw.Read().TryLock(ctx, "readme", time.Minute)
	r2, err := rw.Read().TryLock(ctx, "readme", time.Minute)
	fmt.Println("two readers:", err)

	_, err = rw.Write().TryLock(ctx, "readme", time.Minute)
	fmt.Println("writer while reading:", errors.Is(err, locker.ErrNotObtained))

	_, err = rw.Write().TryLock(ctx, "readme", time.Minute, locker.WithOwner(r1.Owner()))
	fmt.Println("upgrade:", errors.Is(err, locker.ErrUpgrade))

	_ = r1.Release(ctx)
	_ = r2.Release(ctx)
	w, err := rw.Write().TryLock(ctx, "readme", time.Minute)
	fmt.Println("writer alone:", err, w.Fence() > r2.Fence())
	fmt.Println(w.Release(ctx))
	// Output:
	// two readers: <nil>
	// writer while reading: true
	// upgrade: true
	// writer alone: <nil> true
	// <nil>
}

// A semaphore of 3 permits: holdings take permits until they run out, and
// every caller declares the same limit.
func ExampleNewSemaphore() {
	ctx := context.Background()
	store := memory.New()
	sem, err := locker.NewSemaphore(store, 3, locker.Options[string]{Namespace: "pool"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sem.Close()

	big, _ := sem.TryLock(ctx, "db", time.Minute, locker.WithPermits(2))
	one, err := sem.TryLock(ctx, "db", time.Minute)
	fmt.Println("2 + 1 permits:", err)

	_, err = sem.TryLock(ctx, "db", time.Minute)
	fmt.Println("a fourth:", errors.Is(err, locker.ErrNotObtained))

	other, _ := locker.NewSemaphore(store, 5, locker.Options[string]{Namespace: "pool"})
	defer other.Close()
	_, err = other.TryLock(ctx, "db", time.Minute)
	fmt.Println("another limit:", errors.Is(err, locker.ErrMismatch))

	_ = big.Release(ctx)
	h, err := sem.TryLock(ctx, "db", time.Minute, locker.WithPermits(2))
	fmt.Println("2 permits came back:", err)
	_ = h.Release(ctx)
	fmt.Println(one.Release(ctx))
	// Output:
	// 2 + 1 permits: <nil>
	// a fourth: true
	// another limit: true
	// 2 permits came back: <nil>
	// <nil>
}
