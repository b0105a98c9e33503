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

// TestScriptsNeverFailAfterWriting: a key of another type (foreign data
// under the prefix) where a mutex script expects its own makes the script
// either fail with nothing written, or finish: never fail halfway. Every
// script runs on a held lock with a waiter queued, a held lock nobody
// waits for, and a free lock with a waiter queued (and the first and the
// last with a lapsed waiter ahead of the live one), with each of its keys
// replaced in turn by a list.
func TestScriptsNeverFailAfterWriting(t *testing.T) {
	c := startClient(t)
	ctx := context.Background()
	keys := Layout{Prefix: DefaultPrefix}.Keys("wrongtype")
	const retention = time.Hour
	live := fmt.Sprintf("%d 10000 8000 inbox waiter", time.Now().Add(time.Hour).UnixMilli())
	lapsed := "1 10000 8000 inbox0 waiter0"

	states := map[string]func(){
		"HeldWithWaiter": func() {
			c.Set(ctx, keys[KeyLock], "1w 5 tk holder", time.Minute)
			c.ZAdd(ctx, keys[KeyQueue], redis.Z{Score: 1, Member: "w1"})
			c.HSet(ctx, keys[KeyWaiters], "w1", live)
		},
		"HeldAlone": func() {
			c.Set(ctx, keys[KeyLock], "1 5 tk holder", time.Minute)
		},
		"FreeWithWaiter": func() {
			c.ZAdd(ctx, keys[KeyQueue], redis.Z{Score: 1, Member: "w1"})
			c.HSet(ctx, keys[KeyWaiters], "w1", live)
		},
		// A waiter whose heartbeat lapsed heads the queue: the scripts that
		// reach it take it off before they come to the live one.
		"HeldWithLapsedHead": func() {
			c.Set(ctx, keys[KeyLock], "1w 5 tk holder", time.Minute)
			c.ZAdd(ctx, keys[KeyQueue], redis.Z{Score: 0, Member: "w0"}, redis.Z{Score: 1, Member: "w1"})
			c.HSet(ctx, keys[KeyWaiters], "w0", lapsed, "w1", live)
		},
		"FreeWithLapsedHead": func() {
			c.ZAdd(ctx, keys[KeyQueue], redis.Z{Score: 0, Member: "w0"}, redis.Z{Score: 1, Member: "w1"})
			c.HSet(ctx, keys[KeyWaiters], "w0", lapsed, "w1", live)
		},
	}
	req := func(owner, ticket string) driver.AcquireRequest {
		return driver.AcquireRequest{Owner: owner, Ticket: ticket, Lease: time.Minute}
	}
	scripts := []struct {
		name string
		src  string
		args []string
	}{
		{"AcquireFairWaits", AcquireLua, AcquireArgs(req("other", "t2"), true, 10*time.Second, retention, Classic, "inbox2")},
		{"AcquireFairOnce", AcquireLua, AcquireArgs(req("other", "t2"), true, 0, retention, Classic, NoInbox)},
		{"AcquireBarging", AcquireLua, AcquireArgs(req("other", "t2"), false, 0, retention, Classic, NoInbox)},
		{"ReenterHolder", AcquireLua, AcquireArgs(req("holder", "t3"), true, 10*time.Second, retention, Classic, NoInbox)},
		{"ReenterWithQueuedTicketOnce", AcquireLua, AcquireArgs(req("holder", "w1"), true, 0, retention, Classic, NoInbox)},
		{"ClaimGrant", AcquireLua, AcquireArgs(req("waiter", "w1"), true, 10*time.Second, retention, Classic, NoInbox)},
		{"Release", ReleaseLua, ReleaseArgs("holder", "", Classic, retention)},
		{"Leave", LeaveLua, LeaveArgs("w1", Classic)},
		{"Extend", ExtendLua, ExtendArgs("holder", time.Minute)},
		{"Inspect", InspectLua, nil},
		{"ForceRelease", ForceReleaseLua, ForceReleaseArgs(Classic, retention)},
		{"AcquireAllFair", AcquireAllLua, AcquireAllArgs([]driver.AcquireRequest{req("other", "t2")}, true, retention)},
		{"AcquireAllBarging", AcquireAllLua, AcquireAllArgs([]driver.AcquireRequest{req("holder", "t3")}, false, retention)},
	}
	for _, sc := range scripts {
		for state, setup := range states {
			for i, k := range keys {
				if i == KeyChannel {
					continue // a channel, not a key the scripts read or write
				}
				t.Run(fmt.Sprintf("%s/%s/%d", sc.name, state, i), func(t *testing.T) {
					require.NoError(t, c.Del(ctx, keys...).Err())
					setup()
					require.NoError(t, c.Del(ctx, k).Err())
					require.NoError(t, c.RPush(ctx, k, "foreign").Err())
					before := dumps(t, c, keys)
					err := c.Eval(ctx, sc.src, keys, toAny(sc.args)...).Err()
					if err != nil && err != redis.Nil {
						assert.Equal(t, before, dumps(t, c, keys), "failed after writing: %v", err)
					}
				})
			}
		}
	}
}

// dumps returns the DUMP of each of keys that exists, by key.
func dumps(t *testing.T, c *redis.Client, keys []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, k := range keys {
		v, err := c.Dump(context.Background(), k).Result()
		if err == redis.Nil {
			continue
		}
		require.NoError(t, err)
		out[k] = v
	}
	return out
}
