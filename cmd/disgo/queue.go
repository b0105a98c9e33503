package main

import (
	"context"

	"github.com/disgolock/disgo/locker/driver"
)

// stateInspector is the state half of driver.Inspector.
type stateInspector interface {
	Inspect(ctx context.Context, name string) (driver.State, error)
}

// queueInspector is the queue half of driver.Inspector. The views ask for
// it apart, so that a store that can only report the state still shows
// the number of waiters.
type queueInspector interface {
	InspectQueue(ctx context.Context, name string) ([]driver.Waiter, error)
}

// queueOf returns a function that lists the fair queue of a lock in order,
// when the store can, or nil: the views then show the number of waiters
// only.
func queueOf(store any) func(ctx context.Context, name string) ([]waiterView, error) {
	q, ok := store.(queueInspector)
	if !ok {
		return nil
	}
	return func(ctx context.Context, name string) ([]waiterView, error) {
		ws, err := q.InspectQueue(ctx, name)
		if err != nil {
			return nil, err
		}
		out := make([]waiterView, len(ws))
		for i, w := range ws {
			age := int64(-1)
			if w.TTL > 0 {
				age = max(0, (w.TTL - w.Heartbeat).Milliseconds())
			}
			out[i] = waiterView{Position: w.Position, Ticket: w.Ticket, Owner: w.Owner,
				HeartbeatAgeMS: age, HeartbeatMS: w.Heartbeat.Milliseconds()}
		}
		return out, nil
	}
}
