package memory

import (
	"context"
	"math"

	"github.com/disgolock/disgo/locker/driver"
)

var (
	_ driver.MultiAcquirer = (*Client)(nil)
	_ driver.MultiAcquirer = (*Store)(nil)
)

// AcquireAll implements driver.MultiAcquirer on the store's default client.
func (s *Store) AcquireAll(ctx context.Context, reqs []driver.AcquireRequest, fair bool) ([]driver.AcquireResult, bool, error) {
	return s.def.AcquireAll(ctx, reqs, fair)
}

// AcquireAll implements driver.MultiAcquirer, mirroring acquireall.lua:
// every name is checked before any is changed, under the store's one lock,
// so the set is taken whole or not at all. Nobody joins a queue. It always
// applies (ok is true).
func (c *Client) AcquireAll(ctx context.Context, reqs []driver.AcquireRequest, fair bool) ([]driver.AcquireResult, bool, error) {
	now, err := c.begin(ctx)
	if err != nil {
		return nil, true, err
	}
	s := c.s
	defer s.mu.Unlock()
	res := make([]driver.AcquireResult, len(reqs))
	recs := make([]*record, len(reqs))
	fresh := 0
	for i := range res {
		res[i].Position = -1
	}
	for i, req := range reqs {
		r := s.get(req.Name, now)
		recs[i] = r
		if r.count > 0 && r.owner == req.Owner {
			continue // a re-entry
		}
		if r.count == 0 && fair && r.room.Len() > 0 {
			r.evict(now)
		}
		if r.count == 0 && (!fair || r.room.Len() == 0) {
			fresh++
			continue
		}
		// Taken, or queued for: nothing is acquired.
		res[i] = driver.AcquireResult{TTL: -1, Position: -1, Fence: s.lastFence}
		if r.count > 0 {
			res[i].TTL, res[i].Fence = max(r.expiry.Sub(now), 0), r.fence
		}
		for j := range i + 1 {
			s.put(reqs[j].Name, recs[j], now)
		}
		return res, true, nil
	}
	if fresh > 0 && s.lastFence > math.MaxInt64-int64(fresh) {
		for j := range reqs {
			s.put(reqs[j].Name, recs[j], now)
		}
		return nil, true, errFence
	}
	for i, req := range reqs {
		r := recs[i]
		if r.count > 0 {
			// Re-entry: count once per ticket, never shorten the lease.
			if r.lastTicket != req.Ticket {
				r.count++
				r.lastTicket = req.Ticket
			}
			if r.expiry.Sub(now) < req.Lease {
				r.expiry = now.Add(req.Lease)
			}
		} else {
			f, _ := s.fence(now) // checked above: the counter has room for every fresh holding
			r.owner, r.count, r.fence, r.lastTicket = req.Owner, 1, f, req.Ticket
			r.expiry = now.Add(req.Lease)
		}
		res[i] = driver.AcquireResult{Acquired: true, Fence: r.fence, Count: r.count, Position: -1}
		s.put(req.Name, r, now)
	}
	return res, true, nil
}
