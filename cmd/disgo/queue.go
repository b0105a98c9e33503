package main

import "context"

// queueOf returns a function that lists the fair queue of a lock in order,
// when the store can (driver.Inspector.InspectQueue), or nil: the views
// then show the number of waiters only.
func queueOf(store any) func(ctx context.Context, name string) ([]waiterView, error) {
	return nil
}
