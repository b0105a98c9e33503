package rueidisbackend

import (
	"context"
	"testing"
	"time"

	"github.com/disgolock/disgo/internal/redistest"
	"github.com/disgolock/disgo/locker"
)

// BenchmarkLockUnlock measures one uncontended acquire+release (two round
// trips): through the Store directly, and through the facade.
//
//	go test -run '^$' -bench LockUnlock -benchmem ./backend/rueidis/
func BenchmarkLockUnlock(b *testing.B) {
	srv := redistest.Start(b)
	ctx := context.Background()

	b.Run("Store", func(b *testing.B) {
		s, _ := newStore(b, srv, Options{})
		r := req("bench-store", "alice", time.Minute)
		b.ReportAllocs()
		for b.Loop() {
			res, err := s.Acquire(ctx, r)
			if err != nil || !res.Acquired {
				b.Fatalf("acquire: %v %+v", err, res)
			}
			if held, _, err := s.Release(ctx, r.Name, r.Owner, ""); err != nil || !held {
				b.Fatalf("release: %v held=%v", err, held)
			}
		}
	})

	for _, mode := range []locker.Mode{locker.Barging, locker.Fair} {
		b.Run("Locker/"+mode.String(), func(b *testing.B) {
			s, _ := newStore(b, srv, Options{})
			lk, err := locker.New(s, locker.Options[string]{Mode: mode})
			if err != nil {
				b.Fatal(err)
			}
			defer lk.Close()
			b.ReportAllocs()
			for b.Loop() {
				h, err := lk.TryLock(ctx, "bench-locker", time.Minute)
				if err != nil {
					b.Fatalf("trylock: %v", err)
				}
				if err := h.Release(ctx); err != nil {
					b.Fatalf("release: %v", err)
				}
			}
		})
	}
}
