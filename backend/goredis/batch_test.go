package goredis

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/internal/redistest"
	"github.com/disgolock/disgo/internal/storetest"
)

// pipelines is a hook that records the size of every pipeline sent.
type pipelines struct {
	mu    sync.Mutex
	sizes []int
}

func (p *pipelines) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (p *pipelines) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (p *pipelines) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) > 0 && !handshake(cmds[0]) {
			p.mu.Lock()
			p.sizes = append(p.sizes, len(cmds))
			p.mu.Unlock()
		}
		return next(ctx, cmds)
	}
}

func (p *pipelines) get() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]int(nil), p.sizes...)
}

// idle asserts that b has no request in flight and nothing queued.
func idle(t *testing.T, b *batcher) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	assert.Zero(t, b.inFlight, "requests in flight")
	assert.Empty(t, b.queue, "commands queued")
}

// fill occupies every request slot of b with a BLPOP that the server holds
// for hold, and returns a wait for their replies. It returns once the slots
// are taken.
func fill(t *testing.T, b *batcher, hold time.Duration) (wait func()) {
	t.Helper()
	var wg sync.WaitGroup
	for i := range maxInFlight {
		wg.Go(func() {
			_, err := b.do(context.Background(), once{redis.NewCmd(context.Background(), "blpop", fmt.Sprintf("batch:empty:%d", i), hold.Seconds())})
			assert.ErrorIs(t, err, redis.Nil, "the BLPOP of an empty list times out")
		})
	}
	require.Eventually(t, func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.inFlight == maxInFlight
	}, patience, time.Millisecond, "the BLPOPs take every slot")
	return wg.Wait
}

// queuedCount returns how many commands wait in b's queue.
func queuedCount(b *batcher) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.queue)
}

// TestBatcherSendsTheQueueAsOnePipeline: with every slot taken, commands
// queue, and go out together in one pipeline when a slot frees; each caller
// gets its own reply.
func TestBatcherSendsTheQueueAsOnePipeline(t *testing.T) {
	srv := redistest.Start(t)
	c := newClient(t, srv)
	hook := &pipelines{}
	c.AddHook(hook)
	b := &batcher{c: c}

	wait := fill(t, b, 300*time.Millisecond)
	const n = 10
	var wg sync.WaitGroup
	got := make([]any, n)
	for i := range n {
		wg.Go(func() {
			v, err := b.do(ctxT(t), once{redis.NewCmd(context.Background(), "incrby", "batch:sum", i+1)})
			assert.NoError(t, err)
			got[i] = v
		})
	}
	require.Eventually(t, func() bool { return queuedCount(b) == n }, patience, time.Millisecond, "the commands queue")
	assert.Empty(t, hook.get(), "a pipeline went out while every slot was taken")
	wg.Wait()
	wait()

	assert.Equal(t, []int{n}, hook.get(), "the queue went out as one pipeline")
	seen := map[int64]bool{}
	for _, v := range got {
		require.IsType(t, int64(0), v)
		seen[v.(int64)] = true
	}
	assert.Len(t, seen, n, "each caller got the reply of its own INCRBY")
	sum, err := c.Get(ctxT(t), "batch:sum").Int()
	require.NoError(t, err)
	assert.Equal(t, n*(n+1)/2, sum, "every command ran once")
	idle(t, b)
}

// TestBatcherDropsACommandWhoseContextEndedInTheQueue: a queued command's
// caller returns at its context's end, and the command is never sent.
func TestBatcherDropsACommandWhoseContextEndedInTheQueue(t *testing.T) {
	srv := redistest.Start(t)
	c := newClient(t, srv)
	hook := &pipelines{}
	c.AddHook(hook)
	b := &batcher{c: c}

	hold := 500 * time.Millisecond
	wait := fill(t, b, hold)
	ctx, cancel := context.WithTimeout(ctxT(t), 50*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	v, err := b.do(ctx, once{redis.NewCmd(context.Background(), "set", "batch:dropped", "x")})
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Nil(t, v)
	assert.Less(t, time.Since(t0), hold, "the caller waited for a slot after its deadline")
	wait()

	n, err := c.Exists(ctxT(t), "batch:dropped").Result()
	require.NoError(t, err)
	assert.Zero(t, n, "a command whose context had ended was sent")
	assert.Empty(t, hook.get(), "a pipeline of no command was sent")
	idle(t, b)
}

// TestBatcherCallerLeavesAPipelineAtItsDeadline: a caller whose command is
// in a pipeline returns at its own deadline, while the pipeline runs on to
// the latest deadline of its commands and answers the callers still
// waiting.
func TestBatcherCallerLeavesAPipelineAtItsDeadline(t *testing.T) {
	srv := redistest.Start(t)
	c := newClient(t, srv)
	b := &batcher{c: c}

	wait := fill(t, b, 300*time.Millisecond)
	var wg sync.WaitGroup
	// In the same pipeline: a BLPOP the server holds for 1 s, then a SET
	// whose caller gives up after 500 ms, once the pipeline is sent.
	wg.Go(func() {
		ctx, cancel := context.WithTimeout(ctxT(t), patience)
		defer cancel()
		_, err := b.do(ctx, once{redis.NewCmd(context.Background(), "blpop", "batch:empty:long", 1.0)})
		assert.ErrorIs(t, err, redis.Nil, "the long caller got the BLPOP's reply")
	})
	require.Eventually(t, func() bool { return queuedCount(b) == 1 }, patience, time.Millisecond)
	short, cancel := context.WithTimeout(ctxT(t), 500*time.Millisecond)
	defer cancel()
	wg.Go(func() {
		t0 := time.Now()
		_, err := b.do(short, once{redis.NewCmd(context.Background(), "set", "batch:late", "x")})
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Less(t, time.Since(t0), 1100*time.Millisecond, "the short caller waited for the pipeline past its deadline")
	})
	require.Eventually(t, func() bool { return queuedCount(b) == 2 }, patience, time.Millisecond)
	wait()
	wg.Wait()

	v, err := c.Get(ctxT(t), "batch:late").Result()
	require.NoError(t, err, "the SET was sent with the pipeline before its caller left")
	assert.Equal(t, "x", v)
	idle(t, b)
}

// TestBatcherUnderLoad: many goroutines at once get their own replies, and
// every slot is free afterwards.
func TestBatcherUnderLoad(t *testing.T) {
	srv := redistest.Start(t)
	c := newClient(t, srv)
	var n storetest.Requests
	c.AddHook(counter{&n})
	b := &batcher{c: c}

	const goroutines, each = 32, 50
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			key := fmt.Sprintf("batch:load:%d", g)
			for i := range each {
				v, err := b.do(ctxT(t), once{redis.NewCmd(context.Background(), "incr", key)})
				if !assert.NoError(t, err) || !assert.Equal(t, int64(i+1), v, "goroutine %d got another's reply", g) {
					return
				}
			}
		})
	}
	wg.Wait()
	idle(t, b)
	assert.LessOrEqual(t, n.Single.Load()+n.Batches.Load(), int64(goroutines*each), "more requests than commands")
}
