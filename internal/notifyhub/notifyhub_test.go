package notifyhub

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/disgolock/disgo/internal/rediscore"
	"github.com/disgolock/disgo/locker/driver"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// patience bounds every wait of these tests; reaching it is a failure.
const patience = 10 * time.Second

// command is one write the hub made.
type command struct {
	subscribe bool
	channels  []string
}

func (c command) String() string {
	kind := "UNSUBSCRIBE"
	if c.subscribe {
		kind = "SUBSCRIBE"
	}
	return fmt.Sprint(kind, c.channels)
}

// fakeTransport records the hub's writes; the test plays the store.
type fakeTransport struct {
	writes chan command
	mu     sync.Mutex
	err    error // returned by the next writes while set
}

func newFake() *fakeTransport { return &fakeTransport{writes: make(chan command, 1000)} }

func (f *fakeTransport) Subscribe(_ context.Context, channels ...string) error {
	return f.write(command{true, channels})
}

func (f *fakeTransport) Unsubscribe(_ context.Context, channels ...string) error {
	return f.write(command{false, channels})
}

func (f *fakeTransport) write(c command) error {
	f.mu.Lock()
	err := f.err
	f.mu.Unlock()
	f.writes <- c
	return err
}

func (f *fakeTransport) failWith(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

// next returns the next write.
func (f *fakeTransport) next(t *testing.T) command {
	t.Helper()
	select {
	case c := <-f.writes:
		return c
	case <-time.After(patience):
		t.Fatal("timed out waiting for a write to the transport")
		return command{}
	}
}

// noWrites asserts that nothing was written: only meaningful after
// something that happens after the writes in question (a hub call that
// returned, or a later write observed).
func (f *fakeTransport) noWrites(t *testing.T) {
	t.Helper()
	select {
	case c := <-f.writes:
		t.Fatalf("unexpected write %v", c)
	default:
	}
}

// newHub returns a hub that unsubscribes at once, so that tests see every
// command; lingering has tests of its own.
func newHub(t *testing.T) (*Hub, *fakeTransport) {
	f := newFake()
	h := New(f, nil)
	h.SetLinger(0)
	t.Cleanup(h.Close)
	return h, f
}

type result struct {
	sub driver.Subscription
	err error
}

// subscribeAsync runs Subscribe in a goroutine.
func subscribeAsync(ctx context.Context, h *Hub, name, ticket string) <-chan result {
	r := make(chan result, 1)
	go func() {
		s, err := h.Subscribe(ctx, name, ticket)
		r <- result{s, err}
	}()
	return r
}

func await(t *testing.T, r <-chan result) result {
	t.Helper()
	select {
	case res := <-r:
		return res
	case <-time.After(patience):
		t.Fatal("timed out waiting for Subscribe to return")
		return result{}
	}
}

// notReturned asserts that Subscribe has not returned; called when nothing
// that could release it has happened.
func notReturned(t *testing.T, r <-chan result) {
	t.Helper()
	select {
	case res := <-r:
		t.Fatalf("Subscribe returned early: %+v", res)
	default:
	}
}

func woken(s driver.Subscription) bool {
	select {
	case <-s.Wake():
		return true
	default:
		return false
	}
}

// subscribed makes a confirmed subscription, checking the one SUBSCRIBE.
func subscribed(t *testing.T, h *Hub, f *fakeTransport, name, ticket string) driver.Subscription {
	t.Helper()
	r := subscribeAsync(context.Background(), h, name, ticket)
	require.Equal(t, command{true, []string{name}}, f.next(t))
	h.Confirmed(name, true)
	res := await(t, r)
	require.NoError(t, res.err)
	return res.sub
}

func TestSubscribeReturnsOnlyAfterConfirmation(t *testing.T) {
	h, f := newHub(t)
	r := subscribeAsync(context.Background(), h, "a", "t1")
	assert.Equal(t, command{true, []string{"a"}}, f.next(t))
	notReturned(t, r)
	assert.Equal(t, 1, h.ActiveSubscriptions())

	h.Confirmed("b", true) // another channel's confirmation releases nobody here
	notReturned(t, r)
	h.Confirmed("a", true)
	res := await(t, r)
	require.NoError(t, res.err)
	defer res.sub.Close()

	// An already subscribed channel answers at once, without a write.
	s2, err := h.Subscribe(context.Background(), "a", "t2")
	require.NoError(t, err)
	defer s2.Close()
	f.noWrites(t)
	assert.Equal(t, 1, h.ActiveSubscriptions())
}

func TestConcurrentSubscribersShareOneConfirmation(t *testing.T) {
	h, f := newHub(t)
	r1 := subscribeAsync(context.Background(), h, "a", "t1")
	assert.Equal(t, command{true, []string{"a"}}, f.next(t))
	// r2 joins while the first subscribe is pending; wait until it is registered.
	r2 := subscribeAsync(context.Background(), h, "a", "t2")
	require.Eventually(t, func() bool { return subscriberCount(h, "a") == 2 }, patience, time.Millisecond)

	h.Confirmed("a", true)
	res1, res2 := await(t, r1), await(t, r2)
	require.NoError(t, res1.err)
	require.NoError(t, res2.err)
	f.noWrites(t)
	res1.sub.Close()
	res2.sub.Close()
	assert.Equal(t, command{false, []string{"a"}}, f.next(t))
}

func TestReferenceCountToZeroUnsubscribesOnce(t *testing.T) {
	h, f := newHub(t)
	a := subscribed(t, h, f, "a", "t1")
	b, err := h.Subscribe(context.Background(), "a", "t2")
	require.NoError(t, err)

	a.Close()
	a.Close() // idempotent: must not drop b's reference
	assert.Equal(t, 1, h.ActiveSubscriptions())
	assert.Equal(t, 1, subscriberCount(h, "a"))

	b.Close()
	assert.Equal(t, 0, h.ActiveSubscriptions())
	assert.Equal(t, command{false, []string{"a"}}, f.next(t))
	h.Confirmed("a", false)
	assert.Equal(t, 0, entryCount(h), "idle channel still tracked")
	f.noWrites(t)
}

func TestLateConfirmationOfAnOldSubscribeIsNotTakenForANewOne(t *testing.T) {
	h, f := newHub(t)
	ctx, cancel := context.WithCancel(context.Background())
	r1 := subscribeAsync(ctx, h, "a", "t1")
	assert.Equal(t, command{true, []string{"a"}}, f.next(t))
	cancel() // the first waiter gives up before its confirmation: unsubscribe
	assert.ErrorIs(t, await(t, r1).err, context.Canceled)
	assert.Equal(t, command{false, []string{"a"}}, f.next(t))

	r2 := subscribeAsync(context.Background(), h, "a", "t2")
	assert.Equal(t, command{true, []string{"a"}}, f.next(t))

	h.Confirmed("a", true) // confirms the first subscribe, already undone
	notReturned(t, r2)
	h.Confirmed("a", false)
	notReturned(t, r2)
	h.Confirmed("a", true)
	res := await(t, r2)
	require.NoError(t, res.err)
	res.sub.Close()
}

func TestResubscribeWhileUnsubscribeIsPending(t *testing.T) {
	h, f := newHub(t)
	a := subscribed(t, h, f, "a", "t1")
	a.Close()
	assert.Equal(t, command{false, []string{"a"}}, f.next(t))

	r := subscribeAsync(context.Background(), h, "a", "t2")
	assert.Equal(t, command{true, []string{"a"}}, f.next(t), "a channel being unsubscribed must be subscribed again")
	h.Confirmed("a", false)
	notReturned(t, r)
	h.Confirmed("a", true)
	res := await(t, r)
	require.NoError(t, res.err)
	res.sub.Close()
}

func TestMessagesWakeOnlyTheirTicketAndBroadcastWakesAll(t *testing.T) {
	h, f := newHub(t)
	s1 := subscribed(t, h, f, "a", "t1")
	s2, err := h.Subscribe(context.Background(), "a", "t2")
	require.NoError(t, err)
	other := subscribed(t, h, f, "b", "t1")

	h.Message("a", "t1")
	assert.True(t, woken(s1))
	assert.False(t, woken(s2))
	assert.False(t, woken(other), "a message of channel a woke channel b")

	h.Message("a", "nobody")
	assert.False(t, woken(s1) || woken(s2))

	h.Message("a", rediscore.Broadcast)
	h.Message("a", rediscore.Broadcast) // coalesced, never blocks
	assert.True(t, woken(s1))
	assert.True(t, woken(s2))
	assert.False(t, woken(s1), "wake-ups are coalesced to one")
	assert.False(t, woken(other))

	s1.Close()
	h.Message("a", rediscore.Broadcast)
	assert.False(t, woken(s1), "a closed subscription was woken")
	assert.True(t, woken(s2))
	s2.Close()
	other.Close()
}

func TestCancelWhileWaitingForConfirmation(t *testing.T) {
	h, f := newHub(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	r := subscribeAsync(ctx, h, "a", "t1")
	assert.Equal(t, command{true, []string{"a"}}, f.next(t))
	res := await(t, r) // never confirmed
	assert.ErrorIs(t, res.err, context.DeadlineExceeded)
	assert.Nil(t, res.sub)
	assert.Equal(t, 0, h.ActiveSubscriptions(), "the reference was not dropped")
	assert.Equal(t, command{false, []string{"a"}}, f.next(t))
	h.Confirmed("a", true)
	h.Confirmed("a", false)
	assert.Equal(t, 0, entryCount(h))
}

func TestAlreadyCancelledContextTouchesNothing(t *testing.T) {
	h, f := newHub(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := h.Subscribe(ctx, "a", "t1")
	assert.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, 0, h.ActiveSubscriptions())
	f.noWrites(t)
}

func TestResetWakesEverySubscriptionAndReleasesWaiters(t *testing.T) {
	h, f := newHub(t)
	a := subscribed(t, h, f, "a", "t1")
	b := subscribed(t, h, f, "b", "t2")
	r := subscribeAsync(context.Background(), h, "c", "t3")
	assert.Equal(t, command{true, []string{"c"}}, f.next(t))

	h.Reset()
	assert.True(t, woken(a))
	assert.True(t, woken(b))
	res := await(t, r) // the driver resubscribed c with everything else
	require.NoError(t, res.err)
	assert.Equal(t, 3, h.ActiveSubscriptions())

	// The resubscribe confirmations that follow match nothing: they wake
	// their channel, and release nobody by mistake.
	r2 := subscribeAsync(context.Background(), h, "d", "t4")
	assert.Equal(t, command{true, []string{"d"}}, f.next(t))
	h.Confirmed("a", true)
	assert.True(t, woken(a))
	assert.False(t, woken(b))
	notReturned(t, r2)
	h.Confirmed("d", true)
	require.NoError(t, await(t, r2).err)
}

func TestUnaskedConfirmationMeansReconnect(t *testing.T) {
	h, f := newHub(t)
	a := subscribed(t, h, f, "a", "t1")
	b := subscribed(t, h, f, "b", "t1")
	h.Confirmed("a", true) // the driver resubscribed after a reconnect we were not told of
	assert.True(t, woken(a))
	assert.False(t, woken(b))
	f.noWrites(t)
	a.Close()
	b.Close()
}

func TestStoreDroppedSubscriptionIsRenewed(t *testing.T) {
	h, f := newHub(t)
	a := subscribed(t, h, f, "a", "t1")
	h.Confirmed("a", false) // the store unsubscribed us on its own
	assert.True(t, woken(a))
	assert.Equal(t, command{true, []string{"a"}}, f.next(t))
	h.Confirmed("a", true)
	assert.True(t, woken(a), "woken again once subscribed again: messages in between are lost")
	assert.Equal(t, 1, h.ActiveSubscriptions())
	a.Close()
	assert.Equal(t, command{false, []string{"a"}}, f.next(t))
}

func TestMissingConfirmationAfterReconnect(t *testing.T) {
	h, f := newHub(t)
	a := subscribed(t, h, f, "a", "t1")
	a.Close()
	assert.Equal(t, command{false, []string{"a"}}, f.next(t))
	// The unsubscribe confirmation is lost in a reconnect nobody reported;
	// the next subscribe's confirmation must still release its waiter.
	r := subscribeAsync(context.Background(), h, "a", "t2")
	assert.Equal(t, command{true, []string{"a"}}, f.next(t))
	h.Confirmed("a", true)
	res := await(t, r)
	require.NoError(t, res.err)
	assert.True(t, woken(res.sub), "a skipped confirmation means messages may be lost: wake")
	res.sub.Close()
}

func TestTransportErrorFailsTheWaitersAndIsNotSticky(t *testing.T) {
	h, f := newHub(t)
	boom := errors.New("boom")
	f.failWith(boom)
	_, err := h.Subscribe(context.Background(), "a", "t1")
	assert.ErrorIs(t, err, boom)
	assert.Equal(t, command{true, []string{"a"}}, f.next(t))
	assert.Equal(t, 0, h.ActiveSubscriptions())
	assert.Equal(t, command{false, []string{"a"}}, f.next(t), "the failed subscribe is undone")

	f.failWith(nil)
	s := subscribed(t, h, f, "a", "t1")
	s.Close()
}

func TestCloseReleasesEverything(t *testing.T) {
	f := newFake()
	h := New(f, func(name string) string { return "ch:" + name })
	h.SetLinger(0)
	s := subscribedVia(t, h, f, "a", "ch:a")
	r := subscribeAsync(context.Background(), h, "b", "t2")
	assert.Equal(t, command{true, []string{"ch:b"}}, f.next(t))

	h.Close()
	assert.ErrorIs(t, await(t, r).err, ErrClosed)
	assert.True(t, woken(s))
	_, err := h.Subscribe(context.Background(), "c", "t3")
	assert.ErrorIs(t, err, ErrClosed)
	assert.Equal(t, 0, h.ActiveSubscriptions())
	s.Close()
	h.Close()
	f.noWrites(t)
	assert.Equal(t, 0, entryCount(h))
}

// subscribedVia is subscribed for a hub that maps names to channels.
func subscribedVia(t *testing.T, h *Hub, f *fakeTransport, name, channel string) driver.Subscription {
	t.Helper()
	r := subscribeAsync(context.Background(), h, name, "t1")
	require.Equal(t, command{true, []string{channel}}, f.next(t))
	h.Confirmed(channel, true)
	res := await(t, r)
	require.NoError(t, res.err)
	return res.sub
}

// echoStore confirms every write in order, like a store on one connection.
func echoStore(h *Hub, f *fakeTransport, stop <-chan struct{}) {
	for {
		select {
		case c := <-f.writes:
			for _, ch := range c.channels {
				h.Confirmed(ch, c.subscribe)
			}
		case <-stop:
			return
		}
	}
}

func TestConcurrentChurnEndsWithNothingSubscribed(t *testing.T) {
	h, f := newHub(t)
	stop := make(chan struct{})
	storeDone := make(chan struct{})
	go func() {
		defer close(storeDone)
		echoStore(h, f, stop)
	}()

	const workers, rounds = 8, 200
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				name := fmt.Sprint("n", rand.IntN(3))
				ctx, cancel := context.WithTimeout(context.Background(), patience)
				if i%5 == 0 {
					cancel() // some give up at once
				}
				s, err := h.Subscribe(ctx, name, fmt.Sprint(w))
				cancel()
				if err != nil {
					if !errors.Is(err, context.Canceled) {
						errs <- err
						return
					}
					continue
				}
				h.Message(name, fmt.Sprint(w))
				select {
				case <-s.Wake():
				case <-time.After(patience):
					errs <- fmt.Errorf("worker %d: own message did not wake it", w)
					s.Close()
					return
				}
				s.Close()
			}
			errs <- nil
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	assert.Equal(t, 0, h.ActiveSubscriptions())
	require.Eventually(t, func() bool { return entryCount(h) == 0 }, patience, time.Millisecond,
		"channels still tracked after every unsubscribe was confirmed")
	close(stop)
	<-storeDone
}

func subscriberCount(h *Hub, channel string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if e := h.entries[channel]; e != nil {
		return len(e.subs)
	}
	return 0
}

func entryCount(h *Hub) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.entries)
}

func TestGrantMessagesCarryTheFenceToTheirTicketOnly(t *testing.T) {
	h, f := newHub(t)
	s1 := subscribed(t, h, f, "a", "t1")
	s2, err := h.Subscribe(context.Background(), "a", "t2")
	require.NoError(t, err)
	defer s1.Close()
	defer s2.Close()
	g1, g2 := s1, s2
	_, ok := g1.Granted()
	require.False(t, ok)

	h.Message("a", "t1 1795933336365716")
	assert.True(t, woken(s1))
	assert.False(t, woken(s2))
	fence, ok := g1.Granted()
	require.True(t, ok)
	assert.Equal(t, int64(1795933336365716), fence)
	_, ok = g2.Granted()
	assert.False(t, ok)

	// A plain wake-up or a malformed fence is no grant.
	h.Message("a", "t2")
	h.Message("a", "t2 x")
	assert.True(t, woken(s2))
	_, ok = g2.Granted()
	assert.False(t, ok)
}

func TestLingeringSubscriptionIsReusedWithoutARoundTrip(t *testing.T) {
	f := newFake()
	h := New(f, nil)
	h.SetLinger(time.Hour)
	defer h.Close()

	_, ok := h.SubscribeActive("a", "t0")
	require.False(t, ok, "SubscribeActive on a channel that is not subscribed")

	s1 := subscribed(t, h, f, "a", "t1")
	s1.Close()
	f.noWrites(t)
	require.Equal(t, 1, h.ActiveSubscriptions(), "the store subscription lingers")

	// Reused at once, by Subscribe and by SubscribeActive.
	s2, err := h.Subscribe(context.Background(), "a", "t2")
	require.NoError(t, err)
	s3, ok := h.SubscribeActive("a", "t3")
	require.True(t, ok)
	f.noWrites(t)
	h.Message("a", "t3")
	assert.True(t, woken(s3))
	s2.Close()
	s3.Close()
	f.noWrites(t)
}

func TestLingerEndsWithAnUnsubscribe(t *testing.T) {
	f := newFake()
	h := New(f, nil)
	h.SetLinger(20 * time.Millisecond)
	defer h.Close()
	s := subscribed(t, h, f, "a", "t1")
	s.Close()
	require.Equal(t, command{false, []string{"a"}}, f.next(t))
	h.Confirmed("a", false)
	require.Eventually(t, func() bool { return h.ActiveSubscriptions() == 0 && entryCount(h) == 0 }, patience, time.Millisecond)
	_, ok := h.SubscribeActive("a", "t2")
	require.False(t, ok)
}

func TestInboxChannelIsSubscribedWithTheNamesChannel(t *testing.T) {
	h, f := newHub(t)
	h.SetInbox(func(name string) string { return name + ":in" })

	r := subscribeAsync(context.Background(), h, "a", "t1")
	require.Equal(t, command{true, []string{"a", "a:in"}}, f.next(t), "both channels in one command")
	h.Confirmed("a", true)
	notReturned(t, r) // the inbox is not confirmed yet
	h.Confirmed("a:in", true)
	res := await(t, r)
	require.NoError(t, res.err)
	s1 := res.sub
	assert.Equal(t, 1, h.ActiveSubscriptions(), "one name")

	s2, ok := h.SubscribeActive("a", "t2")
	require.True(t, ok, "both channels are confirmed")
	f.noWrites(t)

	// A grant on the inbox reaches its ticket; a broadcast on the name's
	// channel reaches both.
	h.Message("a:in", "t2 7")
	assert.False(t, woken(s1))
	require.True(t, woken(s2))
	fence, ok := s2.Granted()
	require.True(t, ok)
	assert.Equal(t, int64(7), fence)
	h.Message("a", rediscore.Broadcast)
	assert.True(t, woken(s1))
	assert.True(t, woken(s2))

	// The last subscription leaves both channels.
	s1.Close()
	f.noWrites(t)
	s2.Close()
	require.Equal(t, command{false, []string{"a", "a:in"}}, f.next(t), "both channels in one command")
	h.Confirmed("a", false)
	h.Confirmed("a:in", false)
	require.Eventually(t, func() bool { return entryCount(h) == 0 }, patience, time.Millisecond)
}

func TestInboxSubscriptionFailureReleasesBothChannels(t *testing.T) {
	h, f := newHub(t)
	h.SetInbox(func(name string) string { return name + ":in" })
	ctx, cancel := context.WithCancel(context.Background())
	r := subscribeAsync(ctx, h, "a", "t1")
	require.Equal(t, command{true, []string{"a", "a:in"}}, f.next(t))
	h.Confirmed("a", true)
	cancel()
	res := await(t, r)
	require.ErrorIs(t, res.err, context.Canceled)
	require.Equal(t, command{false, []string{"a", "a:in"}}, f.next(t), "both channels are left")
	h.Confirmed("a", false)
	h.Confirmed("a:in", true) // the late confirmation of the inbox
	h.Confirmed("a:in", false)
	require.Eventually(t, func() bool { return entryCount(h) == 0 }, patience, time.Millisecond)
	assert.Zero(t, h.ActiveSubscriptions())
}

// SubscribeActive on a name nobody in the process waits on (every
// uncontended lock) builds no channel name and allocates nothing; once the
// name's entries are tidied away, the same holds again.
func TestSubscribeActiveMissAllocatesNothing(t *testing.T) {
	f := newFake()
	h := New(f, func(name string) string { return "ch:{" + name + "}" })
	h.SetInbox(func(name string) string { return "ch:{" + name + "}:in" })
	h.SetLinger(10 * time.Millisecond)
	defer h.Close()
	allocs := testing.AllocsPerRun(100, func() {
		if _, ok := h.SubscribeActive("free", "t"); ok {
			t.Fatal("SubscribeActive succeeded on a name nobody waits on")
		}
	})
	assert.Zero(t, allocs, "allocations of a SubscribeActive miss")

	r := subscribeAsync(context.Background(), h, "busy", "t1")
	require.Equal(t, command{true, []string{"ch:{busy}", "ch:{busy}:in"}}, f.next(t))
	h.Confirmed("ch:{busy}", true)
	h.Confirmed("ch:{busy}:in", true)
	res := await(t, r)
	require.NoError(t, res.err)
	s2, ok := h.SubscribeActive("busy", "t2")
	require.True(t, ok, "a name this process waits on is found")
	s2.Close()
	res.sub.Close()
	for unsubscribed := 0; unsubscribed < 2; { // the lingering channels end, in one command or two
		c := f.next(t)
		require.False(t, c.subscribe, "an unsubscribe: %v", c)
		for _, ch := range c.channels {
			h.Confirmed(ch, false)
			unsubscribed++
		}
	}
	require.Eventually(t, func() bool { return entryCount(h) == 0 }, patience, time.Millisecond)
	h.mu.Lock()
	left := len(h.byName)
	h.mu.Unlock()
	assert.Zero(t, left, "the name index is tidied with its entries")
	_, ok = h.SubscribeActive("busy", "t3")
	require.False(t, ok)
}

// A renewal of a dropped subscription that fails to be written (the slot
// moved and the slot map is not settled yet, or the master is down) is
// written again after a backoff, until it is; the subscription then gets
// its messages again. Before, it stayed failed and the waiters got no more
// wake-ups until a new Subscribe of the channel.
func TestFailedRenewalIsRetried(t *testing.T) {
	h, f := newHub(t)
	a := subscribed(t, h, f, "a", "t1")
	boom := errors.New("the slot of channel \"a\" keeps moving")
	f.failWith(boom)
	h.Confirmed("a", false) // the store dropped it: its slot moved
	assert.True(t, woken(a))
	for range 3 {
		assert.Equal(t, command{true, []string{"a"}}, f.next(t), "the renewal, and its retries")
	}
	f.failWith(nil)
	assert.Equal(t, command{true, []string{"a"}}, f.next(t))
	assert.False(t, woken(a), "woken once, by the drop")
	h.Confirmed("a", true)
	assert.True(t, woken(a), "what was published since the drop is lost: woken again once subscribed")
	h.Message("a", "t1")
	assert.True(t, woken(a), "a message after the renewal")
	assert.Equal(t, 1, h.ActiveSubscriptions())
	a.Close()
	assert.Equal(t, command{false, []string{"a"}}, f.next(t))
	h.Confirmed("a", false)
	time.Sleep(3 * maxRetry / 2)
	f.noWrites(t)
	assert.Equal(t, 0, entryCount(h))
}

// The retries end when the last subscription of the channel closes, and
// when the hub closes.
func TestRenewalRetriesEnd(t *testing.T) {
	for name, end := range map[string]func(*Hub, driver.Subscription){
		"last subscription closed": func(_ *Hub, s driver.Subscription) { s.Close() },
		"hub closed":               func(h *Hub, _ driver.Subscription) { h.Close() },
	} {
		t.Run(name, func(t *testing.T) {
			h, f := newHub(t)
			a := subscribed(t, h, f, "a", "t1")
			f.failWith(errors.New("connection refused"))
			h.Confirmed("a", false)
			assert.Equal(t, command{true, []string{"a"}}, f.next(t))
			assert.Equal(t, command{true, []string{"a"}}, f.next(t), "a retry")
			end(h, a)
			// The retry being written as it ended may still come, then the
			// unsubscribe of the closed subscription; nothing after them,
			// though the backoff (40 ms by now) passes many times.
			time.Sleep(maxRetry)
			for len(f.writes) > 0 {
				if c := <-f.writes; c.subscribe {
					t.Logf("a retry written as the subscription ended: %v", c)
				}
			}
			time.Sleep(maxRetry)
			f.noWrites(t)
			a.Close()
		})
	}
}
