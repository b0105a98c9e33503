package redisstore

import (
	"context"
	"strconv"

	"github.com/disgolock/disgo/internal/rediscore"
	"github.com/disgolock/disgo/locker/driver"
)

var _ driver.MultiAcquirer = (*Store)(nil)

var acquireAllScript = newScript(rediscore.AcquireAllLua)

// AcquireAll implements driver.MultiAcquirer: one script takes the locks of
// every request or none (acquireall.lua). On a Redis Cluster it applies
// only when every name hashes to one slot; it reports ok == false, sending
// nothing, for names on several slots and for more than
// rediscore.MaxAcquireAll names. One round trip; cancellation as Acquire,
// settle grace included.
func (s *Store) AcquireAll(ctx context.Context, reqs []driver.AcquireRequest, fair bool) ([]driver.AcquireResult, bool, error) {
	if len(reqs) == 0 || len(reqs) > rediscore.MaxAcquireAll {
		return nil, false, nil
	}
	keys := make([]string, 0, rediscore.NumKeys*len(reqs))
	for _, r := range reqs {
		keys = append(keys, s.layout.Keys(r.Name)...)
	}
	if s.client.Cluster() {
		slot := Slot(keys[0])
		for _, k := range keys[rediscore.NumKeys:] {
			if Slot(k) != slot {
				return nil, false, nil
			}
		}
	}
	n := strconv.Itoa(len(keys))
	cmd := Cmd{Head: []string{"EVALSHA", acquireAllScript.evalsha[1], n}, Keys: keys, Args: rediscore.AcquireAllArgs(reqs, fair, s.fenceRetention)}
	sctx, done := settle(ctx)
	r := s.client.Do(sctx, cmd)
	if s.noScript(r.Err) {
		cmd.Head = []string{"EVAL", acquireAllScript.eval[1], n}
		r = s.client.Do(sctx, cmd)
	}
	done()
	err := r.Err
	if err == nil {
		err = ctx.Err() // answered after the caller gave up: it will undo the attempt
	}
	var res []driver.AcquireResult
	if err == nil {
		a, _ := r.Val.([]any)
		reply := make([]int64, len(a))
		if err = decode(reply, a); err == nil {
			res, err = rediscore.ParseAcquireAll(reply, len(reqs))
		}
	}
	if err != nil {
		return nil, true, s.wrap(ctx, "acquire all", err)
	}
	return res, true, nil
}
