package redisstore_test

import (
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/backend/goredis"
	rueidisbackend "github.com/disgolock/disgo/backend/rueidis"
	"github.com/disgolock/disgo/internal/rediscore"
	"github.com/disgolock/disgo/internal/redisstore"
	"github.com/disgolock/disgo/internal/redistest"
	"github.com/disgolock/disgo/internal/token"
	"github.com/disgolock/disgo/locker"
	"github.com/disgolock/disgo/locker/driver"
)

// kinds is a Store's views by name, for tests that run on each kind.
type kinds struct {
	read, write, sem *redisstore.View
}

func viewsOf(s *redisstore.Store) kinds {
	r, w := s.RWLocks()
	return kinds{r.(*redisstore.View), w.(*redisstore.View), s.Semaphores().(*redisstore.View)}
}

// kindEnv is a Store of one adapter on a server of its own, and a raw
// client of that server.
type kindEnv struct {
	s   *redisstore.Store
	k   kinds
	raw redis.UniversalClient
}

func forEachAdapterRaw(t *testing.T, test func(t *testing.T, e kindEnv)) {
	for _, a := range adapters {
		t.Run(a.name, func(t *testing.T) {
			srv := redistest.Start(t)
			s, err := a.new(t, srv.Addr, redisstore.Options{})
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, s.Close()) })
			raw := redis.NewClient(&redis.Options{Addr: srv.Addr, DialTimeout: time.Second})
			t.Cleanup(func() { _ = raw.Close() })
			test(t, kindEnv{s: s, k: viewsOf(s), raw: raw})
		})
	}
}

func semReq(name, owner string, permits, limit int) driver.AcquireRequest {
	r := req(name, owner)
	r.Permits, r.Limit = permits, limit
	return r
}

func acquired(t *testing.T) func(driver.AcquireResult, error) driver.AcquireResult {
	return func(res driver.AcquireResult, err error) driver.AcquireResult {
		t.Helper()
		require.NoError(t, err)
		require.True(t, res.Acquired, "not acquired: %+v", res)
		return res
	}
}

func notAcquired(t *testing.T) func(driver.AcquireResult, error) driver.AcquireResult {
	return func(res driver.AcquireResult, err error) driver.AcquireResult {
		t.Helper()
		require.NoError(t, err)
		require.False(t, res.Acquired, "acquired: %+v", res)
		return res
	}
}

// dump is every key of the server (but the fence records when noFence)
// with its type and content, for comparing states.
func dump(t *testing.T, raw redis.UniversalClient, pattern string) map[string]string {
	t.Helper()
	ctx := ctxT(t)
	keys, err := raw.Keys(ctx, pattern).Result()
	require.NoError(t, err)
	out := map[string]string{}
	for _, k := range keys {
		typ, err := raw.Type(ctx, k).Result()
		require.NoError(t, err)
		var v any
		switch typ {
		case "string":
			v, err = raw.Get(ctx, k).Result()
		case "hash":
			v, err = raw.HGetAll(ctx, k).Result()
		case "zset":
			v, err = raw.ZRangeWithScores(ctx, k, 0, -1).Result()
		default:
			t.Fatalf("key %q of type %s", k, typ)
		}
		require.NoError(t, err)
		out[k] = fmt.Sprintf("%s %v", typ, v)
	}
	return out
}

// TestKindKeysOneSlotApartFromTheMutex: every key of a read-write lock and
// of a semaphore has the name's hash tag (one slot, the mutex's), the three
// locks of a name have distinct keys, and they do not block one another.
func TestKindKeysOneSlotApartFromTheMutex(t *testing.T) {
	forEachAdapterRaw(t, func(t *testing.T, e kindEnv) {
		ctx := ctxT(t)
		for _, name := range []string{"k", "a{b}c", "%7B", "\x00m"} {
			// The mutex, the write hold and a full semaphore, by three owners.
			acquired(t)(e.s.Acquire(ctx, req(name, "m")))
			acquired(t)(e.k.write.Acquire(ctx, req(name, "w")))
			acquired(t)(e.k.sem.Acquire(ctx, semReq(name, "s", 2, 2)))
			// Waiters of each kind, and a revoked holding.
			notAcquired(t)(e.k.read.AcquireFair(ctx, req(name, "r2"), time.Minute))
			notAcquired(t)(e.k.sem.AcquireFair(ctx, semReq(name, "s2", 2, 2), time.Minute))
			notAcquired(t)(e.k.sem.AcquireFair(ctx, semReq(name, "s3", 1, 2), time.Minute))
			notAcquired(t)(e.s.AcquireFair(ctx, req(name, "m2"), time.Minute))
			held, err := e.k.sem.ForceRelease(ctx, name)
			require.NoError(t, err)
			require.True(t, held)

			l := rediscore.Layout{Prefix: rediscore.DefaultPrefix}
			all := dump(t, e.raw, "*")
			want := map[string]bool{}
			for _, k := range append(append(l.Keys(name), l.KindKeys(rediscore.RW, name)...), l.KindKeys(rediscore.Semaphore, name)...) {
				assert.False(t, want[k], "key %q of two locks", k)
				want[k] = true
			}
			slot := redisstore.Slot(l.Keys(name)[0])
			for k := range all {
				assert.True(t, want[k], "name %q: key %q is none of the name's", name, k)
				assert.Equal(t, slot, redisstore.Slot(k), "name %q: key %q in another slot", name, k)
			}
			for _, suffix := range []string{"rw.h", "rw.f", "rw.q", "rw.qw", "rw.e", "sem.h", "sem.f", "sem.q", "sem.qw", "sem.e", "sem.rv"} {
				_, ok := all[rediscore.DefaultPrefix+":"+rediscore.Tag(name)+":"+suffix]
				assert.True(t, ok, "name %q: no key %s", name, suffix)
			}
			require.NoError(t, e.raw.FlushAll(ctx).Err())
		}
	})
}

// TestKindErrorsWriteNothing: a semaphore request of another limit or
// permits fails with ErrMismatch, a reader's write request with ErrUpgrade,
// barging or fair, and the store is as it was.
func TestKindErrorsWriteNothing(t *testing.T) {
	forEachAdapterRaw(t, func(t *testing.T, e kindEnv) {
		ctx := ctxT(t)
		acquired(t)(e.k.sem.Acquire(ctx, semReq("n", "alice", 2, 3)))
		notAcquired(t)(e.k.sem.AcquireFair(ctx, semReq("n", "bob", 2, 3), time.Minute))
		acquired(t)(e.k.read.Acquire(ctx, req("n", "carol")))
		acquired(t)(e.k.read.Acquire(ctx, req("n", "dave")))
		notAcquired(t)(e.k.write.AcquireFair(ctx, req("n", "erin"), time.Minute))
		before := dump(t, e.raw, "*")

		for _, fair := range []bool{false, true} {
			try := func(v *redisstore.View, r driver.AcquireRequest) error {
				var res driver.AcquireResult
				var err error
				if fair {
					res, err = v.AcquireFair(ctx, r, time.Minute)
				} else {
					res, err = v.Acquire(ctx, r)
				}
				assert.Zero(t, res)
				return err
			}
			err := try(e.k.sem, semReq("n", "frank", 1, 4))
			require.ErrorIs(t, err, driver.ErrMismatch, "another limit (fair=%v)", fair)
			require.ErrorIs(t, err, locker.ErrMismatch)
			assert.Contains(t, err.Error(), "limit 3")
			err = try(e.k.sem, semReq("n", "alice", 1, 3))
			require.ErrorIs(t, err, driver.ErrMismatch, "a re-entry with other permits (fair=%v)", fair)
			err = try(e.k.write, req("n", "carol"))
			require.ErrorIs(t, err, driver.ErrUpgrade, "a reader's write (fair=%v)", fair)
			require.ErrorIs(t, err, locker.ErrUpgrade)
			assert.NotErrorIs(t, err, driver.ErrMismatch)
		}
		assert.Equal(t, before, dump(t, e.raw, "*"), "an error reply changed the store")

		// The limit is not recorded once nothing holds and nobody waits.
		require.NoError(t, e.k.sem.Leave(ctx, "n", "nobody"))
		held, err := e.k.sem.ForceRelease(ctx, "n")
		require.NoError(t, err)
		require.True(t, held)
		st, err := e.k.sem.Inspect(ctx, "n")
		require.NoError(t, err)
		require.Len(t, st.Holders, 1, "bob was granted: %+v", st)
		_, _, err = e.k.sem.Release(ctx, "n", "bob", "")
		require.NoError(t, err)
		acquired(t)(e.k.sem.Acquire(ctx, semReq("n", "frank", 4, 4)))
	})
}

// TestKindDeadHoldersLapse: the share of a reader or semaphore holder that
// died ends with its lease: the next operation evicts it and its permits
// come back.
func TestKindDeadHoldersLapse(t *testing.T) {
	forEachAdapterRaw(t, func(t *testing.T, e kindEnv) {
		ctx := ctxT(t)
		dead := req("rw", "dead reader")
		dead.Lease = 50 * time.Millisecond
		acquired(t)(e.k.read.Acquire(ctx, dead))
		acquired(t)(e.k.read.Acquire(ctx, req("rw", "live reader")))
		res := notAcquired(t)(e.k.write.Acquire(ctx, req("rw", "writer")))
		assert.Positive(t, res.TTL)
		held, _, err := e.k.read.Release(ctx, "rw", "live reader", "")
		require.NoError(t, err)
		require.True(t, held)
		require.Eventually(t, func() bool {
			res, err := e.k.write.Acquire(ctx, req("rw", "writer"))
			return err == nil && res.Acquired
		}, patience, 5*time.Millisecond, "the dead reader's share to lapse")
		st, err := e.k.write.Inspect(ctx, "rw")
		require.NoError(t, err)
		assert.Equal(t, "writer", st.Owner)
		require.Len(t, st.Holders, 1)
		held, err = e.k.read.Extend(ctx, "rw", "dead reader", time.Minute)
		require.NoError(t, err)
		assert.False(t, held, "a lapsed holding is not extended")

		// A dead semaphore holder's permits come back to the queue's head.
		d := semReq("sem", "dead", 2, 3)
		d.Lease = 50 * time.Millisecond
		acquired(t)(e.k.sem.Acquire(ctx, d))
		acquired(t)(e.k.sem.Acquire(ctx, semReq("sem", "live", 1, 3)))
		w := semReq("sem", "waiter", 2, 3)
		sub, err := e.k.sem.Subscribe(ctx, "sem", w.Ticket)
		require.NoError(t, err)
		defer sub.Close()
		notAcquired(t)(e.k.sem.AcquireFair(ctx, w, time.Minute))
		require.Eventually(t, func() bool {
			st, err := e.k.sem.Inspect(ctx, "sem")
			return err == nil && st.Used == 1
		}, patience, 5*time.Millisecond, "the dead holding to lapse")
		// Any operation on the name evicts it and grants its permits on.
		require.NoError(t, e.k.sem.Leave(ctx, "sem", "nobody"))
		select {
		case <-sub.Wake():
		case <-time.After(patience):
			t.Fatal("no grant after the dead holding was evicted")
		}
		fence, ok := sub.Granted()
		require.True(t, ok)
		res = acquired(t)(e.k.sem.AcquireFair(ctx, w, time.Minute))
		assert.Equal(t, fence, res.Fence, "the claim of the grant")
		assert.Equal(t, 1, res.Count)
		st, err = e.k.sem.Inspect(ctx, "sem")
		require.NoError(t, err)
		assert.Equal(t, 3, st.Used)
		assert.Equal(t, 3, st.Limit)
		assert.Len(t, st.Holders, 2)
	})
}

// TestKindGrantsARunOfReaders: the end of a write hold grants the readers
// at the head of the queue together, up to the next writer; a semaphore's
// permits go to the head and on while they suffice.
func TestKindGrantsARunOfReaders(t *testing.T) {
	forEachAdapterRaw(t, func(t *testing.T, e kindEnv) {
		ctx := ctxT(t)
		w := req("g", "writer")
		wres := acquired(t)(e.k.write.AcquireFair(ctx, w, time.Minute))
		type waiter struct {
			v   *redisstore.View
			r   driver.AcquireRequest
			sub driver.Subscription
		}
		queue := func(v *redisstore.View, r driver.AcquireRequest) waiter {
			sub, err := v.Subscribe(ctx, r.Name, r.Ticket)
			require.NoError(t, err)
			t.Cleanup(sub.Close)
			res := notAcquired(t)(v.AcquireFair(ctx, r, time.Minute))
			require.GreaterOrEqual(t, res.Position, 0)
			return waiter{v, r, sub}
		}
		r1, r2 := queue(e.k.read, req("g", "r1")), queue(e.k.read, req("g", "r2"))
		w2, r3 := queue(e.k.write, req("g", "w2")), queue(e.k.read, req("g", "r3"))
		// A re-entry and the writer's own read hold come at once, whatever waits.
		acquired(t)(e.k.write.AcquireFair(ctx, req("g", "writer"), time.Minute))
		acquired(t)(e.k.read.AcquireFair(ctx, req("g", "writer"), time.Minute))
		released := func(v *redisstore.View, owner string, times int) {
			for range times {
				held, _, err := v.Release(ctx, "g", owner, "")
				require.NoError(t, err)
				require.True(t, held)
			}
		}
		released(e.k.write, "writer", 2)
		// The writer is a reader now (a downgrade): r1 and r2 join it.
		granted := func(x waiter) int64 {
			t.Helper()
			select {
			case <-x.sub.Wake():
			case <-time.After(patience):
				t.Fatalf("no grant to %s", x.r.Owner)
			}
			f, ok := x.sub.Granted()
			require.True(t, ok, "a wake-up, not a grant, to %s", x.r.Owner)
			return f
		}
		f1, f2 := granted(r1), granted(r2)
		assert.Greater(t, f1, wres.Fence)
		assert.Greater(t, f2, f1)
		st, err := e.k.read.Inspect(ctx, "g")
		require.NoError(t, err)
		assert.Empty(t, st.Owner, "no write holder")
		owners := []string{}
		for _, h := range st.Holders {
			assert.False(t, h.Write)
			owners = append(owners, h.Owner)
		}
		sort.Strings(owners)
		assert.Equal(t, []string{"r1", "r2", "writer"}, owners)
		q, err := e.k.read.InspectQueue(ctx, "g")
		require.NoError(t, err)
		require.Len(t, q, 2)
		assert.Equal(t, []string{"w2", "r3"}, []string{q[0].Owner, q[1].Owner})
		_, ok := w2.sub.Granted()
		assert.False(t, ok)
		_, ok = r3.sub.Granted()
		assert.False(t, ok, "a reader behind a waiting writer")

		released(e.k.read, "writer", 1)
		released(e.k.read, "r1", 1)
		_, ok = w2.sub.Granted()
		assert.False(t, ok, "granted while r2 reads")
		released(e.k.read, "r2", 1)
		fw := granted(w2)
		assert.Greater(t, fw, f2)
		st, err = e.k.write.Inspect(ctx, "g")
		require.NoError(t, err)
		assert.Equal(t, "w2", st.Owner)
		assert.Equal(t, fw, st.Fence)
		// The grant's holding is the waiter's: its ticket undoes it.
		held, _, err := e.k.write.Release(ctx, "g", "w2", w2.r.Ticket)
		require.NoError(t, err)
		require.True(t, held)
		assert.Greater(t, granted(r3), fw)

		// Semaphore: 3 permits, held whole; a(1) b(2) c(1) queue; its
		// release grants a and b, and c waits behind them.
		acquired(t)(e.k.sem.AcquireFair(ctx, semReq("g", "all", 3, 3), time.Minute))
		a, b := queue(e.k.sem, semReq("g", "a", 1, 3)), queue(e.k.sem, semReq("g", "b", 2, 3))
		c := queue(e.k.sem, semReq("g", "c", 1, 3))
		held, _, err = e.k.sem.Release(ctx, "g", "all", "")
		require.NoError(t, err)
		require.True(t, held)
		granted(a)
		granted(b)
		st, err = e.k.sem.Inspect(ctx, "g")
		require.NoError(t, err)
		assert.Equal(t, 3, st.Used)
		assert.Equal(t, 1, st.Waiters)
		_, ok = c.sub.Granted()
		assert.False(t, ok)
		// A barging request that fits nothing waits too; b's release lets c in.
		notAcquired(t)(e.k.sem.Acquire(ctx, semReq("g", "barger", 1, 3)))
		released(e.k.sem, "b", 1)
		granted(c)
	})
}

// TestKindLeavesNoKeys: when every holding ended and every waiter left,
// only the fence records remain (they outlive the locks on purpose), and
// while in use every key has a TTL.
func TestKindLeavesNoKeys(t *testing.T) {
	forEachAdapterRaw(t, func(t *testing.T, e kindEnv) {
		ctx := ctxT(t)
		acquired(t)(e.k.write.Acquire(ctx, req("n", "w")))
		acquired(t)(e.k.sem.Acquire(ctx, semReq("n", "s", 2, 2)))
		var waiters []driver.AcquireRequest
		for i := range 3 {
			r := req("n", fmt.Sprint("r", i))
			notAcquired(t)(e.k.read.AcquireFair(ctx, r, time.Minute))
			waiters = append(waiters, r)
			s := semReq("n", fmt.Sprint("s", i), 1, 2)
			notAcquired(t)(e.k.sem.AcquireFair(ctx, s, time.Minute))
			waiters = append(waiters, s)
			notAcquired(t)(e.k.sem.Acquire(ctx, s))
		}
		for k := range dump(t, e.raw, "*") {
			ttl, err := e.raw.PTTL(ctx, k).Result()
			require.NoError(t, err)
			assert.Positive(t, ttl, "key %q has no TTL", k)
		}
		for i, r := range waiters {
			v := e.k.read
			if i%2 == 1 {
				v = e.k.sem
			}
			require.NoError(t, v.Leave(ctx, "n", r.Ticket))
		}
		fences := map[string]bool{"disgo:{n}:rw.f": true, "disgo:{n}:sem.f": true}
		left := dump(t, e.raw, "*")
		for k := range left {
			if !fences[k] {
				assert.Contains(t, []string{"disgo:{n}:rw.h", "disgo:{n}:rw.e", "disgo:{n}:sem.h", "disgo:{n}:sem.e"}, k, "after the waiters left")
			}
		}
		_, _, err := e.k.write.Release(ctx, "n", "w", "")
		require.NoError(t, err)
		_, _, err = e.k.sem.Release(ctx, "n", "s", "")
		require.NoError(t, err)
		left = dump(t, e.raw, "*")
		for k := range left {
			assert.True(t, fences[k], "key %q left after release", k)
		}
		assert.Len(t, left, 2)
	})
}

// TestKindForceReleaseRevokes: ForceRelease through either view ends
// every holding of the name; each former holder's Extend then fails with
// ErrRevoked, one renewal or a batch, and the waiters get the lock.
func TestKindForceReleaseRevokes(t *testing.T) {
	forEachAdapterRaw(t, func(t *testing.T, e kindEnv) {
		ctx := ctxT(t)
		held, err := e.k.write.ForceRelease(ctx, "f")
		require.NoError(t, err)
		assert.False(t, held, "a free lock")
		acquired(t)(e.k.read.Acquire(ctx, req("f", "r1")))
		acquired(t)(e.k.read.Acquire(ctx, req("f", "r2")))
		w := req("f", "w")
		sub, err := e.k.write.Subscribe(ctx, "f", w.Ticket)
		require.NoError(t, err)
		defer sub.Close()
		notAcquired(t)(e.k.write.AcquireFair(ctx, w, time.Minute))
		held, err = e.k.write.ForceRelease(ctx, "f")
		require.NoError(t, err)
		assert.True(t, held)
		for _, o := range []string{"r1", "r2"} {
			held, err := e.k.read.Extend(ctx, "f", o, time.Minute)
			require.ErrorIs(t, err, driver.ErrRevoked, o)
			assert.False(t, held)
		}
		batch := []driver.Extension{{Name: "f", Owner: "r1", Lease: time.Minute}, {Name: "f", Owner: "w", Lease: time.Minute}}
		require.NoError(t, e.k.read.ExtendBatch(ctx, batch))
		assert.ErrorIs(t, batch[0].Err, driver.ErrRevoked)
		assert.False(t, batch[0].Held)
		assert.NoError(t, batch[1].Err)
		assert.False(t, batch[1].Held, "w holds the write hold, not a read hold")
		select {
		case <-sub.Wake():
		case <-time.After(patience):
			t.Fatal("no grant after the force release")
		}
		_, ok := sub.Granted()
		require.True(t, ok)
		held, err = e.k.write.Extend(ctx, "f", "w", time.Minute)
		require.NoError(t, err)
		assert.True(t, held, "the granted writer renews")

		acquired(t)(e.k.sem.Acquire(ctx, semReq("f", "s1", 1, 2)))
		held, err = e.k.sem.ForceRelease(ctx, "f")
		require.NoError(t, err)
		assert.True(t, held)
		_, err = e.k.sem.Extend(ctx, "f", "s1", time.Minute)
		require.ErrorIs(t, err, driver.ErrRevoked)
		st, err := e.k.sem.Inspect(ctx, "f")
		require.NoError(t, err)
		assert.Zero(t, st)
	})
}

// TestKindReentryAndTickets: a re-entry counts once per ticket and never
// shortens the lease; a ticket-scoped Release only undoes its own attempt.
func TestKindReentryAndTickets(t *testing.T) {
	forEachAdapterRaw(t, func(t *testing.T, e kindEnv) {
		ctx := ctxT(t)
		for _, v := range []*redisstore.View{e.k.read, e.k.write, e.k.sem} {
			name := "re-" + fmt.Sprint(v == e.k.read, v == e.k.write)
			r := semReq(name, "o", 1, 1)
			first := acquired(t)(v.Acquire(ctx, r))
			again := acquired(t)(v.Acquire(ctx, r))
			assert.Equal(t, first.Fence, again.Fence)
			assert.Equal(t, 1, again.Count, "the same ticket counts once")
			r2 := r
			r2.Ticket = token.New()
			r2.Lease = time.Millisecond
			res := acquired(t)(v.AcquireFair(ctx, r2, time.Minute))
			assert.Equal(t, 2, res.Count)
			st, err := v.Inspect(ctx, name)
			require.NoError(t, err)
			require.Len(t, st.Holders, 1)
			assert.Greater(t, st.Holders[0].TTL, 30*time.Second, "a re-entry shortened the lease")
			held, _, err := v.Release(ctx, name, "o", r.Ticket)
			require.NoError(t, err)
			assert.False(t, held, "not the latest acquisition's ticket")
			held, left, err := v.Release(ctx, name, "o", r2.Ticket)
			require.NoError(t, err)
			assert.True(t, held)
			assert.Equal(t, 1, left)
			held, left, err = v.Release(ctx, name, "o", "")
			require.NoError(t, err)
			assert.True(t, held)
			assert.Zero(t, left)
			held, _, err = v.Release(ctx, name, "o", "")
			require.NoError(t, err)
			assert.False(t, held)
		}
	})
}

// TestKindSubscriptionsCountPerLock: the mutex, the read-write lock (both
// views on one channel) and the semaphore of one name are three
// subscriptions on three channels, sharing the Store's connection.
func TestKindSubscriptionsCountPerLock(t *testing.T) {
	forEachAdapterRaw(t, func(t *testing.T, e kindEnv) {
		ctx := ctxT(t)
		var subs []driver.Subscription
		for _, n := range []driver.Notifier{e.k.read, e.k.write, e.k.sem, e.s, e.s} {
			for _, name := range []string{"x", "\x00wx"} {
				sub, err := n.Subscribe(ctx, name, token.New())
				require.NoError(t, err)
				subs = append(subs, sub)
			}
		}
		assert.Equal(t, 6, e.s.ActiveSubscriptions())
		chans, err := e.raw.PubSubShardChannels(ctx, "*").Result()
		require.NoError(t, err)
		l := rediscore.Layout{Prefix: rediscore.DefaultPrefix}
		var want []string
		for _, name := range []string{"x", "\x00wx"} {
			for _, ch := range []string{l.Channel(name), l.KindChannel(rediscore.RW, name), l.KindChannel(rediscore.Semaphore, name)} {
				want = append(want, ch, ch+":"+strings.TrimPrefix(lastInbox(t, chans, ch), ch+":"))
			}
		}
		slices.Sort(want)
		slices.Sort(chans)
		assert.Equal(t, want, chans)
		sub, ok := e.k.write.SubscribeActive("x", token.New())
		require.True(t, ok, "the read view's channel is the write view's")
		sub.Close()
		for _, s := range subs {
			s.Close()
		}
		require.Eventually(t, func() bool { return e.s.ActiveSubscriptions() == 0 }, patience, 5*time.Millisecond)
	})
}

// lastInbox finds the inbox channel of ch among chans.
func lastInbox(t *testing.T, chans []string, ch string) string {
	t.Helper()
	for _, c := range chans {
		if strings.HasPrefix(c, ch+":") {
			return c
		}
	}
	t.Fatalf("no inbox channel of %q in %q", ch, chans)
	return ""
}

// TestKindsThroughTheFacade: the facade's read-write locks and semaphores
// keep their invariants on this store under contention, fair and barging.
func TestKindsThroughTheFacade(t *testing.T) {
	forEachAdapter(t, func(t *testing.T, s *redisstore.Store) { facadeLoad(t, s) })
	t.Run("TwoStores", func(t *testing.T) {
		// Grants go to the inbox of the waiter's store, across adapters.
		addr := redistest.Start(t).Addr
		var stores []driver.Backend
		for _, a := range adapters {
			s, err := a.new(t, addr, redisstore.Options{})
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, s.Close()) })
			stores = append(stores, s)
		}
		facadeLoad(t, stores...)
		raw := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Second})
		t.Cleanup(func() { _ = raw.Close() })
		for k := range dump(t, raw, "*") {
			assert.True(t, strings.HasSuffix(k, ".f"), "key %q left after the load", k)
		}
	})
	t.Run("ClassicPubSub", func(t *testing.T) {
		for _, a := range adapters {
			t.Run(a.name, func(t *testing.T) {
				s, err := a.new(t, redistest.Start(t).Addr, redisstore.Options{ClassicPubSub: true})
				require.NoError(t, err)
				t.Cleanup(func() { require.NoError(t, s.Close()) })
				facadeLoad(t, s)
			})
		}
	})
}

// facadeLoad runs readers, writers and semaphore holders on the stores
// (goroutine i on store i mod len), and checks exclusion and the limit.
func facadeLoad(t *testing.T, stores ...driver.Backend) {
	ctx := ctxT(t)
	for _, mode := range []locker.Mode{locker.Fair, locker.Barging} {
		var rws []*locker.RWLocker[string]
		var sems []*locker.Locker[string]
		for _, s := range stores {
			rw, err := locker.NewRW(s, locker.Options[string]{Mode: mode})
			require.NoError(t, err)
			rws = append(rws, rw)
			sem, err := locker.NewSemaphore(s, 3, locker.Options[string]{Mode: mode})
			require.NoError(t, err)
			sems = append(sems, sem)
		}
		var readers, writers atomic.Int32
		var wg sync.WaitGroup
		for i := range 6 {
			rw := rws[i%len(rws)]
			wg.Go(func() {
				for range 15 {
					if i%3 == 0 {
						l, err := rw.Write().Lock(ctx, "x", time.Second, patience)
						if !assert.NoError(t, err) {
							return
						}
						assert.Equal(t, int32(1), writers.Add(1))
						assert.Zero(t, readers.Load())
						writers.Add(-1)
						assert.NoError(t, l.Release(ctx))
					} else {
						l, err := rw.Read().Lock(ctx, "x", time.Second, patience)
						if !assert.NoError(t, err) {
							return
						}
						readers.Add(1)
						assert.Zero(t, writers.Load())
						readers.Add(-1)
						assert.NoError(t, l.Release(ctx))
					}
				}
			})
		}
		wg.Wait()
		var in atomic.Int32
		for i := range 6 {
			sem := sems[i%len(sems)]
			wg.Go(func() {
				for range 15 {
					p := 1 + i%2
					l, err := sem.Lock(ctx, "y", time.Second, patience, locker.WithPermits(p))
					if !assert.NoError(t, err) {
						return
					}
					assert.LessOrEqual(t, in.Add(int32(p)), int32(3))
					in.Add(-int32(p))
					assert.NoError(t, l.Release(ctx))
				}
			})
		}
		wg.Wait()
		for i := range stores {
			require.NoError(t, rws[i].Close())
			require.NoError(t, sems[i].Close())
		}
	}
}

// TestKindUncontendedPairCommands measures, with INFO commandstats, what
// an uncontended acquire and release of each kind run on the server: two
// EVALSHA and the commands their scripts call.
func TestKindUncontendedPairCommands(t *testing.T) {
	forEachAdapterRaw(t, func(t *testing.T, e kindEnv) {
		ctx := ctxT(t)
		stats := func() map[string]int64 {
			out := map[string]int64{}
			info, err := e.raw.Info(ctx, "commandstats").Result()
			require.NoError(t, err)
			for _, line := range strings.Split(info, "\n") {
				name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
				if !ok || !strings.HasPrefix(name, "cmdstat_") {
					continue
				}
				var calls int64
				_, err := fmt.Sscanf(rest, "calls=%d", &calls)
				require.NoError(t, err)
				out[strings.TrimPrefix(name, "cmdstat_")] = calls
			}
			return out
		}
		handshake := map[string]bool{"info": true, "hello": true, "ping": true, "client|setinfo": true, "client|setname": true, "select": true}
		for _, c := range []struct {
			what string
			v    *redisstore.View
			want [2]int64 // barging, fair
		}{{"read", e.k.read, [2]int64{14, 15}}, {"write", e.k.write, [2]int64{14, 15}}, {"semaphore", e.k.sem, [2]int64{15, 15}}} {
			r := semReq("warm", "o", 1, 1) // loads the scripts
			acquired(t)(c.v.Acquire(ctx, r))
			_, _, err := c.v.Release(ctx, "warm", "o", "")
			require.NoError(t, err)
			for i, fair := range []bool{false, true} {
				before := stats()
				r := semReq("pair", "o", 1, 1)
				if fair {
					acquired(t)(c.v.AcquireFair(ctx, r, time.Minute))
				} else {
					acquired(t)(c.v.Acquire(ctx, r))
				}
				held, _, err := c.v.Release(ctx, "pair", "o", "")
				require.NoError(t, err)
				require.True(t, held)
				ran, total := map[string]int64{}, int64(0)
				for cmd, n := range stats() {
					if d := n - before[cmd]; d > 0 && !handshake[cmd] {
						ran[cmd], total = d, total+d
					}
				}
				assert.Equal(t, int64(2), ran["evalsha"], "%s fair=%v: %v", c.what, fair, ran)
				for _, cmd := range []string{"spublish", "publish", "hget", "zrem", "hdel"} {
					assert.Zero(t, ran[cmd], "%s fair=%v ran %s: %v", c.what, fair, cmd, ran)
				}
				assert.Equal(t, c.want[i], total, "%s fair=%v: %v", c.what, fair, ran)
				t.Logf("uncontended %s pair (fair=%v): %d commands, the 2 EVALSHA included: %v", c.what, fair, total, ran)
			}
		}
	})
}

// TestKindCluster runs the kinds on a Redis Cluster of three masters, with
// both adapters: names spread over the masters, each lock's keys on one,
// grants delivered on the masters' shard channels, errors decoded.
func TestKindCluster(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	open := map[string]func(t *testing.T) *redisstore.Store{
		"goredis": func(t *testing.T) *redisstore.Store {
			cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs, ContextTimeoutEnabled: true, DialTimeout: time.Second})
			t.Cleanup(func() { _ = cc.Close() })
			s, err := goredis.New(cc, goredis.Options{})
			require.NoError(t, err)
			t.Cleanup(func() { assert.NoError(t, s.Close()) })
			return s
		},
		"rueidis": func(t *testing.T) *redisstore.Store {
			cc, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: c.Addrs, DisableCache: true, Dialer: net.Dialer{Timeout: time.Second}})
			require.NoError(t, err)
			t.Cleanup(cc.Close)
			s, err := rueidisbackend.New(cc, rueidisbackend.Options{})
			require.NoError(t, err)
			t.Cleanup(func() { assert.NoError(t, s.Close()) })
			return s
		},
	}
	raw := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs, DialTimeout: time.Second})
	t.Cleanup(func() { _ = raw.Close() })
	for _, a := range []string{"goredis", "rueidis"} {
		t.Run(a, func(t *testing.T) {
			s := open[a](t)
			k := viewsOf(s)
			ctx := ctxT(t)
			masters := map[string]bool{}
			for i := range 12 {
				name := fmt.Sprintf("%s-%d", a, i)
				addr, err := raw.MasterForKey(ctx, rediscore.Layout{Prefix: rediscore.DefaultPrefix}.KindKeys(rediscore.RW, name)[0])
				require.NoError(t, err)
				masters[addr.Options().Addr] = true

				acquired(t)(k.write.AcquireFair(ctx, req(name, "w"), time.Minute))
				r := req(name, "r")
				sub, err := k.read.Subscribe(ctx, name, r.Ticket)
				require.NoError(t, err)
				notAcquired(t)(k.read.AcquireFair(ctx, r, time.Minute))
				// The queued reader holds nothing yet: no upgrade.
				notAcquired(t)(k.write.AcquireFair(ctx, req(name, "r"), 0))
				_, _, err = k.write.Release(ctx, name, "w", "")
				require.NoError(t, err)
				select {
				case <-sub.Wake():
				case <-time.After(patience):
					t.Fatalf("%s: no grant", name)
				}
				_, ok := sub.Granted()
				require.True(t, ok, name)
				sub.Close()
				_, err = k.write.Acquire(ctx, req(name, "r"))
				require.ErrorIs(t, err, driver.ErrUpgrade, name)

				acquired(t)(k.sem.Acquire(ctx, semReq(name, "s", 1, 2)))
				_, err = k.sem.Acquire(ctx, semReq(name, "t", 1, 3))
				require.ErrorIs(t, err, driver.ErrMismatch, name)
				held, err := k.sem.ForceRelease(ctx, name)
				require.NoError(t, err)
				require.True(t, held)
				_, err = k.sem.Extend(ctx, name, "s", time.Minute)
				require.ErrorIs(t, err, driver.ErrRevoked, name)
				batch := []driver.Extension{{Name: name, Owner: "r", Lease: time.Minute}}
				require.NoError(t, k.read.ExtendBatch(ctx, batch))
				require.NoError(t, batch[0].Err)
				require.True(t, batch[0].Held)
				_, _, err = k.read.Release(ctx, name, "r", "")
				require.NoError(t, err)
			}
			assert.Len(t, masters, 3, "the names spread over every master")
			facadeLoad(t, s)
		})
	}
}

// TestKindsUnderLeastPrivilegeACL: a user with exactly rediscore.ACLRules
// runs every operation of the kinds: the scripts call no command and
// touch no key or channel the rules leave out.
func TestKindsUnderLeastPrivilegeACL(t *testing.T) {
	srv := redistest.Start(t)
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr, DialTimeout: time.Second})
	t.Cleanup(func() { _ = admin.Close() })
	ctx := ctxT(t)
	args := []any{"ACL", "SETUSER", "locker", "reset", "on", ">secret"}
	for _, r := range strings.Fields(rediscore.ACLRules(rediscore.DefaultPrefix)) {
		args = append(args, r)
	}
	require.NoError(t, admin.Do(ctx, args...).Err())
	stores := map[string]*redisstore.Store{}
	gc := redis.NewClient(&redis.Options{Addr: srv.Addr, Username: "locker", Password: "secret", DialTimeout: time.Second, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = gc.Close() })
	s, err := goredis.New(gc, goredis.Options{})
	require.NoError(t, err)
	stores["goredis"] = s
	rc, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr}, Username: "locker", Password: "secret",
		ForceSingleClient: true, DisableCache: true, Dialer: net.Dialer{Timeout: time.Second}})
	require.NoError(t, err)
	t.Cleanup(rc.Close)
	s, err = rueidisbackend.New(rc, rueidisbackend.Options{})
	require.NoError(t, err)
	stores["rueidis"] = s
	for _, a := range []string{"goredis", "rueidis"} {
		t.Run(a, func(t *testing.T) {
			s := stores[a]
			t.Cleanup(func() { require.NoError(t, s.Close()) })
			k := viewsOf(s)
			name := "acl-" + a
			acquired(t)(k.read.AcquireFair(ctx, req(name, "r"), time.Minute))
			w := req(name, "w")
			sub, err := k.write.Subscribe(ctx, name, w.Ticket)
			require.NoError(t, err)
			defer sub.Close()
			notAcquired(t)(k.write.AcquireFair(ctx, w, time.Minute))
			_, err = k.write.Acquire(ctx, req(name, "r"))
			require.ErrorIs(t, err, driver.ErrUpgrade)
			q, err := k.read.InspectQueue(ctx, name)
			require.NoError(t, err)
			require.Len(t, q, 1)
			st, err := k.read.Inspect(ctx, name)
			require.NoError(t, err)
			require.Len(t, st.Holders, 1)
			batch := []driver.Extension{{Name: name, Owner: "r", Lease: time.Minute}}
			require.NoError(t, k.read.ExtendBatch(ctx, batch))
			require.NoError(t, batch[0].Err)
			held, err := k.read.ForceRelease(ctx, name)
			require.NoError(t, err)
			require.True(t, held)
			select {
			case <-sub.Wake():
			case <-time.After(patience):
				t.Fatal("no grant under the ACL")
			}
			_, ok := sub.Granted()
			require.True(t, ok)
			require.NoError(t, k.write.Leave(ctx, name, "gone"))
			_, _, err = k.write.Release(ctx, name, "w", w.Ticket)
			require.NoError(t, err)
			_, err = k.read.Extend(ctx, name, "r", time.Minute)
			require.ErrorIs(t, err, driver.ErrRevoked)
			_, err = k.sem.Acquire(ctx, semReq(name, "s", 1, 2))
			require.NoError(t, err)
			_, err = k.sem.Acquire(ctx, semReq(name, "s", 1, 3))
			require.ErrorIs(t, err, driver.ErrMismatch)
			facadeLoad(t, s)
		})
	}
}

// TestKindEvictionIsBounded: one operation evicts at most 64 lapsed
// holdings; the next one goes on where it stopped.
func TestKindEvictionIsBounded(t *testing.T) {
	forEachAdapterRaw(t, func(t *testing.T, e kindEnv) {
		ctx := ctxT(t)
		acquired(t)(e.k.read.Acquire(ctx, req("many", "live"))) // keeps the keys
		// 70 holdings whose lease ended long ago, as the scripts write them.
		for i := range 70 {
			id := fmt.Sprint("r dead-", i)
			require.NoError(t, e.raw.HSet(ctx, "disgo:{many}:rw.h", id, "1 5 tk 1").Err())
			require.NoError(t, e.raw.ZAdd(ctx, "disgo:{many}:rw.e", redis.Z{Score: 1, Member: id}).Err())
		}
		require.NoError(t, e.raw.HIncrBy(ctx, "disgo:{many}:rw.h", "used", 70).Err())
		st, err := e.k.read.Inspect(ctx, "many")
		require.NoError(t, err)
		require.Len(t, st.Holders, 1, "only the live reader")
		card := func() int64 {
			n, err := e.raw.ZCard(ctx, "disgo:{many}:rw.e").Result()
			require.NoError(t, err)
			return n
		}
		require.Equal(t, int64(71), card(), "lapsed holdings stay until an operation evicts them")
		notAcquired(t)(e.k.write.Acquire(ctx, req("many", "writer")))
		require.Equal(t, int64(7), card(), "the first operation evicts 64")
		notAcquired(t)(e.k.write.Acquire(ctx, req("many", "writer")))
		require.Equal(t, int64(1), card(), "the next one the rest")
		held, _, err := e.k.read.Release(ctx, "many", "live", "")
		require.NoError(t, err)
		require.True(t, held)
		acquired(t)(e.k.write.Acquire(ctx, req("many", "writer")))
	})
}

// TestKindGarbageRecords: a waiter or holding record that is not one is
// skipped by the scripts and reported by Inspect as an error, never a
// panic or a failed script.
func TestKindGarbageRecords(t *testing.T) {
	forEachAdapterRaw(t, func(t *testing.T, e kindEnv) {
		ctx := ctxT(t)
		acquired(t)(e.k.sem.Acquire(ctx, semReq("g", "holder", 1, 1)))
		bad, good := semReq("g", "bad", 1, 1), semReq("g", "good", 1, 1)
		notAcquired(t)(e.k.sem.AcquireFair(ctx, bad, time.Minute))
		sub, err := e.k.sem.Subscribe(ctx, "g", good.Ticket)
		require.NoError(t, err)
		defer sub.Close()
		notAcquired(t)(e.k.sem.AcquireFair(ctx, good, time.Minute))
		require.NoError(t, e.raw.HSet(ctx, "disgo:{g}:sem.qw", bad.Ticket, "garbage").Err())
		held, _, err := e.k.sem.Release(ctx, "g", "holder", "")
		require.NoError(t, err)
		require.True(t, held)
		select {
		case <-sub.Wake():
		case <-time.After(patience):
			t.Fatal("the waiter behind a garbage record was not granted")
		}
		_, ok := sub.Granted()
		require.True(t, ok)
		q, err := e.k.sem.InspectQueue(ctx, "g")
		require.NoError(t, err)
		assert.Empty(t, q, "the garbage waiter was evicted")

		require.NoError(t, e.raw.HSet(ctx, "disgo:{g}:sem.h", "s good", "not a record").Err())
		_, err = e.k.sem.Inspect(ctx, "g")
		require.Error(t, err)
		_, _, err = e.k.sem.Release(ctx, "g", "good", "")
		require.NoError(t, err, "a garbage holding record is not held, and no script error")
	})
}
