package rediscore

import (
	"fmt"
	"slices"
	"time"

	"github.com/disgolock/disgo/locker"
	"github.com/disgolock/disgo/locker/driver"
)

// MaxAcquireAll is the most names acquireall.lua takes in one script: it
// keeps the script's KEYS and ARGV far below Lua's stack limit and one
// script's time on the server's thread short.
const MaxAcquireAll = 128

// AcquireAllArgs returns ARGV of acquireall.lua for reqs (one owner, one
// lease; the facade validated them).
func AcquireAllArgs(reqs []driver.AcquireRequest, fair bool, fenceRetention time.Duration) []string {
	f := "0"
	if fair {
		f = "1"
	}
	args := make([]string, 0, 4+len(reqs))
	args = append(args, reqs[0].Owner, Ms(reqs[0].Lease), f, Ms(fenceRetention))
	for _, r := range reqs {
		args = append(args, r.Ticket)
	}
	return args
}

// ParseAcquireAll decodes the reply of acquireall.lua for n names, its
// elements as integers. It fails for a reply of another shape and with
// ErrFenceRecord when a name's fence record holds no token below 2^63-1.
func ParseAcquireAll(r []int64, n int) ([]driver.AcquireResult, error) {
	res := make([]driver.AcquireResult, n)
	switch {
	case len(r) == 1+2*n && r[0] == 1:
		for i := range res {
			f, c := r[1+2*i], r[2+2*i]
			if f <= 0 || c <= 0 {
				return nil, fmt.Errorf("rediscore: acquire all reply %v: fence and count must be positive", slices.Clone(r))
			}
			res[i] = driver.AcquireResult{Acquired: true, Fence: f, Count: int(c), Position: -1}
		}
		return res, nil
	case len(r) == 4 && r[0] == 0 && r[1] >= 1 && r[1] <= int64(n):
		if r[3] < 0 {
			return nil, fmt.Errorf("rediscore: acquire all reply %v: negative fence", slices.Clone(r))
		}
		ttl := time.Duration(-1)
		if r[2] >= 0 && r[2] <= int64(locker.MaxLease/time.Millisecond) {
			ttl = time.Duration(r[2]) * time.Millisecond
		}
		for i := range res {
			res[i].Position = -1
		}
		res[r[1]-1] = driver.AcquireResult{TTL: ttl, Position: -1, Fence: r[3]}
		return res, nil
	case len(r) == 2 && r[0] == -1 && r[1] >= 1 && r[1] <= int64(n):
		return nil, ErrFenceRecord
	}
	return nil, fmt.Errorf("rediscore: unexpected acquire all reply %v", slices.Clone(r))
}
