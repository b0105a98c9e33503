package rediscore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/locker/driver"
)

// TestKindScriptsNeverFailAfterWriting is TestScriptsNeverFailAfterWriting
// for the read-write lock's and the semaphore's scripts: with each of a
// name's keys replaced in turn by a list (foreign data under the prefix), a
// script either fails with every key as it was, or finishes. The states
// are built by the scripts themselves: a holding with a waiter queued, a
// holding alone, a lapsed holding with a waiter queued (beside a live one,
// where two fit), and a waiter queued on a free name (the holders' keys
// deleted, so that it was never granted).
func TestKindScriptsNeverFailAfterWriting(t *testing.T) {
	c := startClient(t)
	ctx := context.Background()
	const retention = time.Hour
	pub := Classic
	run := func(src string, keys []string, args []string) error {
		err := c.Eval(ctx, src, keys, toAny(args)...).Err()
		if err == redis.Nil {
			return nil
		}
		return err
	}
	for _, kc := range []struct {
		kind         Kind
		hold, wait   byte // the kinds of the holdings and of the waiter
		limit        int  // a semaphore's
		holdP, waitP int  // the permits of each holding and of the waiter (a semaphore's)
	}{
		{RW, 'w', 'r', 0, 0, 0},
		{RW, 'r', 'w', 0, 0, 0},
		{Semaphore, 's', 's', 1, 1, 1},
		{Semaphore, 's', 's', 2, 1, 2},
	} {
		keys := Layout{Prefix: DefaultPrefix}.KindKeys(kc.kind, "wrongtype")
		req := func(owner, ticket string, permits int) driver.AcquireRequest {
			return driver.AcquireRequest{Owner: owner, Ticket: ticket, Lease: time.Minute, Permits: max(permits, 1), Limit: max(kc.limit, 1)}
		}
		hold := func(owner string) {
			require.NoError(t, run(KindAcquireLua, keys, KindAcquireArgs(kc.hold, req(owner, "t-"+owner, kc.holdP), false, 0, retention, pub, NoInbox)))
		}
		queued := 0
		queue := func(owner, ticket string) {
			require.NoError(t, run(KindAcquireLua, keys, KindAcquireArgs(kc.wait, req(owner, ticket, kc.waitP), true, time.Minute, retention, pub, "inbox")))
			n, err := c.ZCard(ctx, keys[KindKeyQueue]).Result()
			require.NoError(t, err)
			queued++
			require.EqualValues(t, queued, n, "the waiter is not queued")
		}
		lapse := func(owner string) { // the holding's lease deadline moves into the past
			require.NoError(t, c.ZAdd(ctx, keys[KindKeyLeases], redis.Z{Score: 1, Member: string(kc.hold) + " " + owner}).Err())
		}
		states := map[string]func(){
			"HeldWithWaiter":   func() { hold("holder"); queue("waiter", "w1") },
			"HeldAlone":        func() { hold("holder") },
			"LapsedWithWaiter": func() { hold("holder"); queue("waiter", "w1"); lapse("holder") },
			"FreeWithWaiter": func() {
				hold("holder")
				queue("waiter", "w1")
				require.NoError(t, c.Del(ctx, keys[KindKeyHolders], keys[KindKeyLeases]).Err())
			},
			"FreeWithTwoWaiters": func() { // the second is granted when the first leaves
				hold("holder")
				queue("waiter", "w1")
				queue("waiter2", "w2")
				require.NoError(t, c.Del(ctx, keys[KindKeyHolders], keys[KindKeyLeases]).Err())
			},
		}
		if kc.hold == 'r' || kc.limit >= 2*kc.holdP {
			// Eviction writes, and the name stays held: an attempt then queues.
			states["LapsedBesideHeldWithWaiter"] = func() { hold("holder"); hold("second"); queue("waiter", "w1"); lapse("holder") }
		}
		scripts := []struct {
			name string
			src  string
			args []string
		}{
			{"AcquireFairWaits", KindAcquireLua, KindAcquireArgs(kc.wait, req("other", "t2", kc.waitP), true, 10*time.Second, retention, pub, "inbox2")},
			{"AcquireFairOnce", KindAcquireLua, KindAcquireArgs(kc.wait, req("other", "t2", kc.waitP), true, 0, retention, pub, NoInbox)},
			{"AcquireBarging", KindAcquireLua, KindAcquireArgs(kc.wait, req("other", "t2", kc.waitP), false, 0, retention, pub, NoInbox)},
			{"ReenterHolder", KindAcquireLua, KindAcquireArgs(kc.hold, req("holder", "t3", kc.holdP), true, 10*time.Second, retention, pub, NoInbox)},
			{"HolderTakesOther", KindAcquireLua, KindAcquireArgs('r', req("holder", "t4", 0), true, 10*time.Second, retention, pub, NoInbox)},
			// A re-entry with a queued ticket leaves the queue (tickets are
			// one call's own; the script must hold up whatever it is sent).
			{"ReenterWithQueuedTicketOnce", KindAcquireLua, KindAcquireArgs(kc.hold, req("holder", "w1", kc.holdP), true, 0, retention, pub, NoInbox)},
			{"ClaimTurn", KindAcquireLua, KindAcquireArgs(kc.wait, req("waiter", "w1", kc.waitP), true, 10*time.Second, retention, pub, "inbox")},
			{"Release", KindReleaseLua, KindReleaseArgs(kc.hold, "holder", "", pub, retention)},
			{"Leave", KindLeaveLua, KindLeaveArgs(kc.wait, "w1", pub, retention)},
			{"Extend", KindExtendLua, KindExtendArgs(kc.hold, "holder", time.Minute)},
			{"Inspect", KindInspectLua, nil},
			{"ForceRelease", KindForceReleaseLua, KindForceReleaseArgs(kc.hold, pub, retention)},
		}
		for _, sc := range scripts {
			if sc.name == "HolderTakesOther" && kc.kind == Semaphore {
				continue // a semaphore has one kind of holding
			}
			for state, setup := range states {
				for i, k := range keys {
					if i == KindKeyChannel {
						continue // a channel, not a key the scripts read or write
					}
					t.Run(fmt.Sprintf("%c%c%d/%s/%s/%d", kc.hold, kc.wait, kc.limit, sc.name, state, i), func(t *testing.T) {
						require.NoError(t, c.Del(ctx, keys...).Err())
						queued = 0
						setup()
						require.NoError(t, c.Del(ctx, k).Err())
						require.NoError(t, c.RPush(ctx, k, "foreign").Err())
						before := dumps(t, c, keys)
						err := run(sc.src, keys, sc.args)
						if err != nil {
							assert.Equal(t, before, dumps(t, c, keys), "failed after writing: %v", err)
						}
						// Where a script reads the key before it writes anything,
						// the user learns of the foreign data: the holders' record
						// (every script but extend's, which reads the leases), and
						// the queue of a fair acquisition or a leave.
						fair := sc.src == KindAcquireLua && sc.args[3] == "1"
						if (i == KindKeyHolders && sc.name != "Extend") || (i == KindKeyQueue && (fair || sc.name == "Leave")) {
							assert.ErrorContains(t, err, "WRONGTYPE")
						}
					})
				}
			}
		}
	}
}
