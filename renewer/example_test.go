package renewer_test

import (
	"context"
	"fmt"
	"time"

	"github.com/disgolock/disgo/locker/driver"
	"github.com/disgolock/disgo/renewer"
)

// alwaysHeld is a tiny Extender: a store in which the owner always still
// holds the lock.
type alwaysHeld struct{}

func (alwaysHeld) Extend(context.Context, string, string, time.Duration) (bool, error) {
	return true, nil
}

func ExampleNew() {
	r, err := renewer.New(alwaysHeld{}, renewer.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()

	const lease = 300 * time.Millisecond
	acquired := time.Now() // taken before the acquiring request was sent
	renewed := make(chan time.Time, 1)
	stop := r.Keep(driver.Hold{
		Name: "orders/42", Owner: "worker-1", Lease: lease, Deadline: acquired.Add(lease),
		OnRenewed: func(deadline time.Time) {
			select {
			case renewed <- deadline:
			default:
			}
		},
		OnLost: func(cause error) { fmt.Println("lost:", cause) },
	})
	deadline := <-renewed // after a third of the lease
	fmt.Println("renewed, deadline moved forward:", deadline.After(acquired.Add(lease)))
	stop() // before the final release
	fmt.Println("kept:", r.Len())
	// Output:
	// renewed, deadline moved forward: true
	// kept: 0
}
