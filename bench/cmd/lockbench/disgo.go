package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/disgolock/disgo/locker"
	"github.com/disgolock/disgo/locker/driver"
)

// disgoInst is one disgo Locker with the store and client it runs on.
type disgoInst struct {
	lk      *locker.Locker[string]
	closers []io.Closer // closed in order after the Locker
}

// Lock takes the lock with every safety feature on: LockWithRenewal is
// reentrant, fenced and auto-renewed.
func (d *disgoInst) Lock(ctx context.Context, key string) (Unlock, error) {
	h, err := d.lk.LockWithRenewal(ctx, key, locker.WaitForever)
	if err != nil {
		return nil, err
	}
	return h.Release, nil
}

func (d *disgoInst) Close() error {
	errs := []error{d.lk.Close()}
	for _, c := range d.closers {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// disgoOpen opens the store of a disgo implementation, for the scenarios
// of the other kinds of lock (read-write locks, semaphores).
type disgoOpen struct {
	mode locker.Mode
	// open returns a store on a client of its own, and the closers of
	// store and client, to be closed in order.
	open func(addr string) (driver.Backend, []io.Closer, error)
}

// disgoImpls returns the fair and the barging variant of one adapter.
// open returns the adapter's store and the closers of store and client.
func disgoImpls(adapter string, open func(addr string) (driver.Backend, []io.Closer, error)) []Impl {
	var impls []Impl
	for _, mode := range []locker.Mode{locker.Fair, locker.Barging} {
		impls = append(impls, Impl{
			Name:   fmt.Sprintf("disgo-%s-%s", adapter, mode),
			Waits:  true,
			Renews: true,
			disgo:  &disgoOpen{mode: mode, open: open},
			Note:   fmt.Sprintf("%s adapter, %s mode, LockWithRenewal (reentrant, fencing, auto-renewal), WaitForever bounded by ctx", adapter, mode),
			Open: func(addr string, o openOpts) (Instance, error) {
				store, closers, err := open(addr)
				if err != nil {
					return nil, err
				}
				lk, err := locker.New(store, locker.Options[string]{Mode: mode, RenewLease: o.renewLease})
				if err != nil {
					for _, c := range closers {
						_ = c.Close()
					}
					return nil, err
				}
				return &disgoInst{lk: lk, closers: closers}, nil
			},
		})
	}
	return impls
}
