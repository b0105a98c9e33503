package goredis

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// maxInFlight is how many requests a Store's lock commands may have in
	// flight before further commands queue for a pipeline.
	maxInFlight = 4
	// minBudget is the least time a queued command's context must have left
	// for it to join a pipeline; one with less is sent on its own, so that
	// it does not cut short the pipeline of the others.
	minBudget = 50 * time.Millisecond
)

// batcher sends a Store's lock commands on a standalone client. While fewer
// than max requests are in flight, a command is sent on its own by its
// caller, as a plain go-redis call. Beyond that, commands queue, and each
// time a request completes, the queue goes out as one pipeline: under load,
// one write and one read carry many commands, which saves the client and
// the server a system call or two per command.
//
// A queued command is in one of four states, changed under mu:
//
//   - waiting: in the queue. If its context ends, its caller withdraws it
//     (abandoned) and returns the context's error; it is never sent.
//   - abandoned: withdrawn, by its caller or by take (whose context had
//     ended or whose deadline had passed when a pipeline was formed).
//   - claimed: taken into a pipeline. Its caller waits for the pipeline,
//     whatever its context says, so that whatever follows the call (such
//     as the facade's clean-up of a failed acquisition) runs after the
//     command. The pipeline ends at the earliest deadline among its
//     commands, so the wait is bounded by the caller's own deadline.
//   - alone: taken with less than minBudget left; its caller sends it
//     itself, on a request slot counted for it.
//
// Commands are marked as not retryable (see [once]): go-redis resends no
// pipeline that holds one.
type batcher struct {
	c         *redis.Client
	max       int
	minBudget time.Duration

	mu       sync.Mutex
	inFlight int      // requests being sent: single commands and pipelines
	queue    []*entry // commands waiting for a request
}

func newBatcher(c *redis.Client) *batcher {
	return &batcher{c: c, max: maxInFlight, minBudget: minBudget}
}

// The states of an entry.
const (
	waiting = iota
	abandoned
	claimed
	alone
)

// entry is a command in a batcher's queue. Once claimed, cmd belongs to
// the pipeline that sends it: its caller reads it only after done is
// closed. done is closed when the entry leaves the waiting state other than
// by its caller's withdrawal.
type entry struct {
	ctx   context.Context
	cmd   once
	state int // guarded by batcher.mu
	done  chan struct{}
}

// process sends cmd, alone or in a pipeline, as Client.Process does: the
// reply, or the error, is cmd's, and the error is returned.
func (b *batcher) process(ctx context.Context, cmd once) error {
	b.mu.Lock()
	if b.inFlight < b.max {
		b.inFlight++
		b.mu.Unlock()
		return b.send(ctx, cmd)
	}
	e := &entry{ctx: ctx, cmd: cmd, done: make(chan struct{})}
	b.queue = append(b.queue, e)
	b.mu.Unlock()
	select {
	case <-e.done:
	case <-ctx.Done():
		b.mu.Lock()
		if e.state == waiting {
			e.state = abandoned
			b.mu.Unlock()
			cmd.SetErr(ctx.Err())
			return cmd.Err()
		}
		b.mu.Unlock()
		<-e.done // claimed: the pipeline is bounded by the earliest deadline
	}
	if e.state == alone { // written before done was closed
		if err := ctx.Err(); err != nil {
			b.release() // ended since: never sent
			cmd.SetErr(err)
			return err
		}
		return b.send(ctx, cmd)
	}
	return cmd.Err()
}

// send sends cmd on its own, on a request slot already counted, and frees
// the slot.
func (b *batcher) send(ctx context.Context, cmd once) error {
	defer b.release()
	return b.c.Process(ctx, cmd)
}

// release ends a single command's request: it hands the slot to the
// queued commands, sent as one pipeline from a new goroutine, or frees it.
func (b *batcher) release() {
	if batch := b.next(); len(batch) > 0 {
		go b.flush(batch)
	}
}

// flush sends batch, which holds a request slot, then every batch that
// queued in the meantime, until the queue is empty.
func (b *batcher) flush(batch []*entry) {
	for len(batch) > 0 {
		b.pipeline(batch)
		batch = b.next()
	}
}

// next takes the queue for the request slot of the caller, or frees the
// slot when no command is to go in a pipeline.
func (b *batcher) next() []*entry {
	b.mu.Lock()
	defer b.mu.Unlock()
	batch := b.take(time.Now())
	if len(batch) == 0 {
		b.inFlight--
	}
	return batch
}

// take empties the queue, with mu held, and returns the commands to send
// as one pipeline. It settles the others: a withdrawn one is dropped; one
// whose context has ended or whose deadline is past fails with the
// context's error, unsent; one with less than minBudget left is handed
// back to its caller to send alone, on a slot of its own.
func (b *batcher) take(now time.Time) []*entry {
	var batch []*entry
	for _, e := range b.queue {
		if e.state != waiting {
			continue
		}
		d, bounded := e.ctx.Deadline()
		switch {
		case e.ctx.Err() != nil || bounded && !now.Before(d):
			err := e.ctx.Err()
			if err == nil {
				err = context.DeadlineExceeded
			}
			e.cmd.SetErr(err)
			e.state = abandoned
			close(e.done)
		case bounded && d.Sub(now) < b.minBudget:
			e.state = alone
			b.inFlight++
			close(e.done)
		default:
			e.state = claimed
			batch = append(batch, e)
		}
	}
	b.queue = nil
	return batch
}

// pipeline sends batch, which holds one request slot, and wakes its
// callers. A single command is sent with its own context. Several are sent
// as one pipeline, whose context carries the first command's values (for
// hooks) and the earliest deadline among them (none if none has one). When
// the pipeline fails, or a hook panics, every command left unanswered gets
// the error: none is reported as a success it did not have.
func (b *batcher) pipeline(batch []*entry) {
	var err error
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("goredis: a go-redis hook panicked: %v", r)
		}
		for _, e := range batch {
			if err != nil && e.cmd.Err() == nil && e.cmd.Val() == nil {
				e.cmd.SetErr(err)
			}
			close(e.done)
		}
	}()
	if len(batch) == 1 {
		err = b.c.Process(batch[0].ctx, batch[0].cmd)
		return
	}
	var earliest time.Time
	pipe := b.c.Pipeline()
	for _, e := range batch {
		if d, ok := e.ctx.Deadline(); ok && (earliest.IsZero() || d.Before(earliest)) {
			earliest = d
		}
		_ = pipe.Process(e.ctx, e.cmd)
	}
	ctx := context.WithoutCancel(batch[0].ctx)
	if !earliest.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, earliest)
		defer cancel()
	}
	_, err = pipe.Exec(ctx)
}
