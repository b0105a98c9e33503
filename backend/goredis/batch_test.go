package goredis

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/internal/redistest"
)

// gate is a hook that holds every ECHO until open is closed (or its
// context ends), holds every pipeline until pipes is closed when pipes is
// not nil, and records what it sees.
type gate struct {
	open    chan struct{}
	pipes   chan struct{}
	entered chan struct{} // receives once per pipeline, when it arrives; nil: none
	panics  bool          // pipelines panic

	mu        sync.Mutex
	sizes     []int       // of the pipelines
	deadlines []time.Time // of the pipelines; zero: none
	values    []any       // of the pipelines' contexts, for valueKey
	singles   []string    // names of the single commands, ECHO aside
}

type valueKey struct{}

func (g *gate) DialHook(next redis.DialHook) redis.DialHook { return next }

func (g *gate) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if handshake(cmd) {
			return next(ctx, cmd)
		}
		if cmd.Name() == "echo" {
			select {
			case <-g.open:
			case <-ctx.Done():
				return ctx.Err()
			}
			return next(ctx, cmd)
		}
		g.mu.Lock()
		g.singles = append(g.singles, cmd.Name())
		g.mu.Unlock()
		return next(ctx, cmd)
	}
}

func (g *gate) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) > 0 && handshake(cmds[0]) {
			return next(ctx, cmds)
		}
		d, _ := ctx.Deadline()
		g.mu.Lock()
		g.sizes = append(g.sizes, len(cmds))
		g.deadlines = append(g.deadlines, d)
		g.values = append(g.values, ctx.Value(valueKey{}))
		g.mu.Unlock()
		if g.entered != nil {
			g.entered <- struct{}{}
		}
		if g.pipes != nil {
			<-g.pipes
		}
		if g.panics {
			panic("boom")
		}
		return next(ctx, cmds)
	}
}

func (g *gate) pipelines() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]int(nil), g.sizes...)
}

func (g *gate) single() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.singles...)
}

// setup returns a batcher on a new client of a new server, with g as the
// client's hook, and a second client of the server without it.
func setup(t *testing.T, g *gate) (*batcher, *redis.Client) {
	t.Helper()
	srv := redistest.Start(t)
	c := newClient(t, srv)
	c.AddHook(g)
	return newBatcher(c), newClient(t, srv)
}

// fill takes every request slot of b with an ECHO held by g; they return
// when g.open is closed, and fill's wait function waits for them.
func fill(t *testing.T, b *batcher) (wait func()) {
	t.Helper()
	var wg sync.WaitGroup
	for i := 0; i < b.max; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := do(b, ctxT(t), echo())
			assert.NoError(t, err)
			assert.Equal(t, "held", v)
		}()
	}
	eventually(t, "every slot taken", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.inFlight == b.max
	})
	return wg.Wait
}

// do runs b.process and returns cmd's reply, as conn.Do reads it.
func do(b *batcher, ctx context.Context, c once) (any, error) {
	_ = b.process(ctx, c)
	return c.Result()
}

// also queues one more call of c on b, behind the n-1 queued before it.
func also(t *testing.T, b *batcher, n int, ctx context.Context, c once) <-chan result {
	t.Helper()
	r := call(b, ctx, c)
	queued(t, b, n)
	return r
}

func echo() once { return once{redis.NewCmd(context.Background(), "echo", "held")} }

func cmd(args ...any) once { return once{redis.NewCmd(context.Background(), args...)} }

// call runs do(b, ctx, c) in a goroutine; its result arrives on the channel.
func call(b *batcher, ctx context.Context, c once) <-chan result {
	out := make(chan result, 1)
	go func() {
		v, err := do(b, ctx, c)
		out <- result{v, err}
	}()
	return out
}

type result struct {
	v   any
	err error
}

// queued waits until n commands wait in b's queue.
func queued(t *testing.T, b *batcher, n int) {
	t.Helper()
	eventually(t, fmt.Sprintf("%d commands queued", n), func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		w := 0
		for _, e := range b.queue {
			if e.state == waiting {
				w++
			}
		}
		return w == n
	})
}

// idle waits until b has nothing in flight or queued.
func idle(t *testing.T, b *batcher) {
	t.Helper()
	eventually(t, "the batcher idle", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.inFlight == 0 && len(b.queue) == 0
	})
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func get(t *testing.T, r <-chan result) result {
	t.Helper()
	select {
	case res := <-r:
		return res
	case <-time.After(patience):
		t.Fatal("timed out waiting for a call")
		return result{}
	}
}

// TestBatcherSendsTheQueueAsOnePipeline: below max in flight, commands go
// on their own; beyond, the queue goes out as one pipeline when a request
// completes, and every caller gets its own reply.
func TestBatcherSendsTheQueueAsOnePipeline(t *testing.T) {
	g := &gate{open: make(chan struct{})}
	b, other := setup(t, g)
	wait := fill(t, b)
	var rs []<-chan result
	for i := 0; i < 6; i++ {
		rs = append(rs, call(b, ctxT(t), cmd("incr", "n")))
	}
	queued(t, b, 6)
	assert.Empty(t, g.pipelines(), "nothing sent while queued")
	close(g.open)
	wait()
	seen := map[any]bool{}
	for _, r := range rs {
		res := get(t, r)
		require.NoError(t, res.err)
		seen[res.v] = true
	}
	assert.Len(t, seen, 6, "each caller gets its own reply")
	assert.Equal(t, []int{6}, g.pipelines())
	assert.Empty(t, g.single())
	n, err := other.Get(ctxT(t), "n").Int()
	require.NoError(t, err)
	assert.Equal(t, 6, n)
	idle(t, b)
}

// TestBatcherWithdrawsACommandWhoseContextEndsInTheQueue: its caller
// returns the context's error at once, and the command is never sent.
func TestBatcherWithdrawsACommandWhoseContextEndsInTheQueue(t *testing.T) {
	g := &gate{open: make(chan struct{})}
	b, other := setup(t, g)
	wait := fill(t, b)
	ctx, cancel := context.WithCancel(ctxT(t))
	r := call(b, ctx, cmd("set", "k", "v"))
	kept := call(b, ctxT(t), cmd("incr", "n"))
	queued(t, b, 2)
	cancel()
	res := get(t, r) // while every slot is still taken
	assert.ErrorIs(t, res.err, context.Canceled)
	close(g.open)
	wait()
	require.NoError(t, get(t, kept).err)
	idle(t, b)
	assert.Equal(t, int64(0), other.Exists(ctxT(t), "k").Val(), "the withdrawn SET was sent")
	assert.Equal(t, []string{"incr"}, g.single(), "the one command left goes on its own, the SET not at all")
	assert.Empty(t, g.pipelines())
}

// deadlined is a context with a deadline that it does not enforce, as when
// its timer has not fired yet.
type deadlined struct {
	context.Context
	d time.Time
}

func (c deadlined) Deadline() (time.Time, bool) { return c.d, true }

// TestBatcherTakeSortsTheQueue: take claims what can go in a pipeline,
// fails what is out of time, hands back what is short of time, and drops
// what was withdrawn.
func TestBatcherTakeSortsTheQueue(t *testing.T) {
	b := &batcher{max: 4, minBudget: time.Second, inFlight: 4}
	now := time.Now()
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	mk := func(ctx context.Context, state int) *entry {
		return &entry{ctx: ctx, cmd: cmd("ping"), state: state, done: make(chan struct{})}
	}
	withdrawn := mk(context.Background(), abandoned)
	unbounded := mk(context.Background(), waiting)
	ended := mk(cancelled, waiting)
	past := mk(deadlined{context.Background(), now}, waiting)
	short := mk(deadlined{context.Background(), now.Add(time.Second - time.Nanosecond)}, waiting)
	ample := mk(deadlined{context.Background(), now.Add(time.Second)}, waiting)
	b.queue = []*entry{withdrawn, unbounded, ended, past, short, ample}

	batch := b.take(now)
	assert.Equal(t, []*entry{unbounded, ample}, batch)
	assert.Nil(t, b.queue)
	assert.Equal(t, 5, b.inFlight, "a slot for the command sent alone")
	closed := func(e *entry) bool {
		select {
		case <-e.done:
			return true
		default:
			return false
		}
	}
	assert.False(t, closed(withdrawn), "its caller has gone")
	assert.Equal(t, abandoned, withdrawn.state)
	for _, e := range []*entry{unbounded, ample} {
		assert.Equal(t, claimed, e.state)
		assert.False(t, closed(e), "woken before its pipeline ran")
	}
	assert.Equal(t, abandoned, ended.state)
	assert.True(t, closed(ended))
	assert.ErrorIs(t, ended.cmd.Err(), context.Canceled)
	assert.Equal(t, abandoned, past.state)
	assert.True(t, closed(past))
	assert.ErrorIs(t, past.cmd.Err(), context.DeadlineExceeded)
	assert.Equal(t, alone, short.state)
	assert.True(t, closed(short))
	assert.NoError(t, short.cmd.Err())
}

// TestBatcherClaimedCallerWaitsForItsPipeline: once its command is in a
// pipeline, a caller whose context ends waits for the pipeline's answer,
// so that nothing it does next overtakes the command.
func TestBatcherClaimedCallerWaitsForItsPipeline(t *testing.T) {
	g := &gate{open: make(chan struct{}), pipes: make(chan struct{}), entered: make(chan struct{}, 1)}
	b, _ := setup(t, g)
	wait := fill(t, b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := also(t, b, 1, ctx, cmd("set", "k", "v"))
	other := also(t, b, 2, ctxT(t), cmd("incr", "n"))
	close(g.open)
	select {
	case <-g.entered:
	case <-time.After(patience):
		t.Fatal("no pipeline")
	}
	cancel()
	select {
	case res := <-r:
		t.Fatalf("the caller left its pipeline: %v", res.err)
	case <-time.After(100 * time.Millisecond):
	}
	close(g.pipes)
	res := get(t, r)
	require.NoError(t, res.err)
	assert.Equal(t, "OK", res.v)
	require.NoError(t, get(t, other).err)
	wait()
	idle(t, b)
}

// TestBatcherPipelineEndsAtTheEarliestDeadline: and carries the values of
// its first command's context.
func TestBatcherPipelineEndsAtTheEarliestDeadline(t *testing.T) {
	g := &gate{open: make(chan struct{})}
	b, _ := setup(t, g)
	wait := fill(t, b)
	first, c1 := context.WithTimeout(context.WithValue(context.Background(), valueKey{}, "first"), time.Hour)
	defer c1()
	early, c2 := context.WithTimeout(context.Background(), 30*time.Minute)
	defer c2()
	var rs []<-chan result
	for i, ctx := range []context.Context{first, early, context.Background()} {
		rs = append(rs, also(t, b, i+1, ctx, cmd("incr", "n")))
	}
	close(g.open)
	wait()
	for _, r := range rs {
		require.NoError(t, get(t, r).err)
	}
	idle(t, b)
	want, _ := early.Deadline()
	g.mu.Lock()
	defer g.mu.Unlock()
	assert.Equal(t, []int{3}, g.sizes)
	assert.Equal(t, []time.Time{want}, g.deadlines)
	assert.Equal(t, []any{"first"}, g.values)
}

// TestBatcherSendsACommandShortOfTimeOnItsOwn: it would cut short the
// pipeline of the others.
func TestBatcherSendsACommandShortOfTimeOnItsOwn(t *testing.T) {
	g := &gate{open: make(chan struct{})}
	b, _ := setup(t, g)
	b.minBudget = time.Hour
	wait := fill(t, b)
	r1 := call(b, ctxT(t), cmd("incr", "n"))
	r2 := call(b, ctxT(t), cmd("incr", "n"))
	queued(t, b, 2)
	close(g.open)
	wait()
	v1, v2 := get(t, r1), get(t, r2)
	require.NoError(t, v1.err)
	require.NoError(t, v2.err)
	assert.ElementsMatch(t, []any{int64(1), int64(2)}, []any{v1.v, v2.v})
	idle(t, b)
	assert.Empty(t, g.pipelines())
	assert.Equal(t, []string{"incr", "incr"}, g.single())
}

// TestBatcherHookPanicFailsThePipeline: a panicking hook fails the
// pipeline's commands, not the process, and frees its slot.
func TestBatcherHookPanicFailsThePipeline(t *testing.T) {
	g := &gate{open: make(chan struct{}), panics: true}
	b, _ := setup(t, g)
	wait := fill(t, b)
	r1 := call(b, ctxT(t), cmd("incr", "n"))
	r2 := call(b, ctxT(t), cmd("incr", "n"))
	queued(t, b, 2)
	close(g.open)
	wait()
	for _, r := range []<-chan result{r1, r2} {
		res := get(t, r)
		require.Error(t, res.err)
		assert.Contains(t, res.err.Error(), "hook panicked: boom")
		assert.Nil(t, res.v)
	}
	idle(t, b)
}

// TestBatcherFailedPipelineFailsEveryCommand: a pipeline that runs out of
// time reports the error for each of its commands, none as a success.
func TestBatcherFailedPipelineFailsEveryCommand(t *testing.T) {
	g := &gate{open: make(chan struct{})}
	b, _ := setup(t, g)
	wait := fill(t, b)
	short, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	// The BLPOP blocks the connection, so the INCR behind it is never
	// answered either: both fail when the pipeline's deadline, the
	// BLPOP's, passes.
	r1 := also(t, b, 1, short, cmd("blpop", "nothing", "0"))
	r2 := also(t, b, 2, ctxT(t), cmd("incr", "n"))
	close(g.open)
	wait()
	for _, r := range []<-chan result{r1, r2} {
		res := get(t, r)
		assert.True(t, errors.Is(res.err, context.DeadlineExceeded) || isTimeout(res.err), "%v", res.err)
	}
	idle(t, b)
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

// TestBatcherUnderLoad: many goroutines, each command answered once and in
// full, and batching engaged.
func TestBatcherUnderLoad(t *testing.T) {
	g := &gate{open: make(chan struct{})}
	close(g.open)
	b, other := setup(t, g)
	const workers, each = 32, 50
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				_, err := do(b, ctxT(t), cmd("incr", "n"))
				if !assert.NoError(t, err) {
					return
				}
			}
		}()
	}
	wg.Wait()
	idle(t, b)
	n, err := other.Get(ctxT(t), "n").Int()
	require.NoError(t, err)
	assert.Equal(t, workers*each, n)
	batched := 0
	for _, s := range g.pipelines() {
		batched += s
	}
	assert.Equal(t, workers*each, batched+len(g.single()))
	assert.Positive(t, batched, "no command went in a pipeline")
}

// TestNewBatchesOnlyAClient: Cluster and Ring clients route each command by
// its key, and send every command on its own.
func TestNewBatchesOnlyAClient(t *testing.T) {
	for _, tc := range []struct {
		name    string
		client  redis.UniversalClient
		batches bool
	}{
		{"standalone", redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}), true},
		{"failover", redis.NewFailoverClient(&redis.FailoverOptions{MasterName: "m", SentinelAddrs: []string{"127.0.0.1:1"}}), true},
		{"cluster", redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}}), false},
		{"ring", redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": "127.0.0.1:1"}}), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() { _ = tc.client.Close() }()
			c := newConn(tc.client)
			assert.Equal(t, tc.batches, c.b != nil)
		})
	}
}
