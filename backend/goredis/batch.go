package goredis

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// maxInFlight is how many requests a Store's lock commands may have in
// flight at once before it starts batching them (see [batcher]).
const maxInFlight = 4

// batcher sends a Store's lock commands. While fewer than maxInFlight
// requests are in flight, a command is sent on its own, by its caller, as a
// plain go-redis call. Beyond that, commands queue, and each time a request
// completes, the whole queue goes out as one pipeline: under load, one write
// and one read carry many commands, which saves a system call or two per
// command on the client and on the server, and the server's answers are no
// slower, since it serves its commands one at a time anyway.
//
// A queued command keeps its own context: its caller returns when that
// context ends, whether or not the command was sent. A pipeline runs until
// the latest deadline of its commands (none if one of them has none), so
// that the server's answer to every caller still waiting can be read. A
// command whose context ended while it was queued is not sent. Commands are
// marked as not retryable (see [once]): go-redis resends no pipeline that
// holds one.
type batcher struct {
	c redis.UniversalClient

	mu       sync.Mutex
	inFlight int       // requests being sent: single commands and pipelines
	queue    []*queued // commands waiting for a request
}

// queued is a command waiting in a batcher's queue. Once queued, cmd
// belongs to the pipeline that sends it: the caller reads it only after
// done is closed.
type queued struct {
	ctx  context.Context
	cmd  once
	done chan struct{}
}

// do sends cmd, alone or in a pipeline, and returns its reply. It returns
// when the reply has been read or ctx has ended.
func (b *batcher) do(ctx context.Context, cmd once) (any, error) {
	b.mu.Lock()
	if b.inFlight < maxInFlight {
		b.inFlight++
		b.mu.Unlock()
		_ = b.c.Process(ctx, cmd)
		b.done()
		return cmd.Result()
	}
	q := &queued{ctx: ctx, cmd: cmd, done: make(chan struct{})}
	b.queue = append(b.queue, q)
	b.mu.Unlock()
	select {
	case <-q.done:
		return cmd.Result()
	case <-ctx.Done():
		select {
		case <-q.done: // answered in the meantime
			return cmd.Result()
		default:
		}
		return nil, ctx.Err()
	}
}

// done ends a single command's request: it hands the request's slot to the
// queued commands if there are any, sending them as one pipeline from a new
// goroutine, and frees the slot otherwise.
func (b *batcher) done() {
	b.mu.Lock()
	batch := b.queue
	b.queue = nil
	if len(batch) == 0 {
		b.inFlight--
	}
	b.mu.Unlock()
	if len(batch) > 0 {
		go b.flush(batch)
	}
}

// flush sends batch as one pipeline, then every batch that queued in the
// meantime, until the queue is empty; then it frees its slot.
func (b *batcher) flush(batch []*queued) {
	for len(batch) > 0 {
		b.send(batch)
		b.mu.Lock()
		batch = b.queue
		b.queue = nil
		if len(batch) == 0 {
			b.inFlight--
		}
		b.mu.Unlock()
	}
}

// send sends the commands of batch whose context has not ended as one
// pipeline, and wakes every caller of batch.
func (b *batcher) send(batch []*queued) {
	defer func() {
		for _, q := range batch {
			close(q.done)
		}
	}()
	var latest time.Time
	bounded := true
	pipe := b.c.Pipeline()
	for _, q := range batch {
		if q.ctx.Err() != nil {
			continue // its caller has returned: never sent
		}
		if d, ok := q.ctx.Deadline(); !ok {
			bounded = false
		} else if d.After(latest) {
			latest = d
		}
		_ = pipe.Process(q.ctx, q.cmd)
	}
	if pipe.Len() == 0 {
		return
	}
	ctx := context.Background()
	if bounded {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, latest)
		defer cancel()
	}
	_, _ = pipe.Exec(ctx) // errors are read per command
}
