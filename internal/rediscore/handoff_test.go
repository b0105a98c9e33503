package rediscore

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReleaseHandsOnAsHandOn: release.lua, which takes the common hand-off
// itself and leaves the rest to hand_on from what it read and wrote, ends
// in the state that hand_on of lib.lua alone reaches from the same state,
// and publishes the same messages: for every fence record (issued from,
// settled, or none to issue), and for a queue whose head is live, is
// preceded by a waiter whose heartbeat lapsed or by one without a record,
// holds only waiters that are gone, or is empty.
func TestReleaseHandsOnAsHandOn(t *testing.T) {
	c := startClient(t)
	ctx := context.Background()

	release := fixedClockScript(t, ReleaseLua)
	ref := fixedClockScript(t, withLib("hand_on(ARGV[3], ARGV[4])\nreturn 0\n"))
	const retention = time.Hour
	const clockMs = 1700000000012 // fixedClock in ms
	live := strconv.Itoa(clockMs+10000) + " 10000 8000 "
	lapsed := strconv.Itoa(clockMs) + " 10000 8000 " // the deadline is now: lapsed
	const owner = "the holder"

	msgs := published(t, c)

	type waiter struct{ ticket, rec string } // rec "": no record
	queues := []struct {
		name    string
		waiters []waiter
	}{
		{"LiveHead", []waiter{{"w1", live + "inbox1 owner one"}, {"w2", live + "inbox2 owner two"}}},
		{"LiveHeadNoInbox", []waiter{{"w1", live + "- owner one"}}},
		{"LapsedFirst", []waiter{{"w0", lapsed + "inbox0 gone"}, {"w1", live + "inbox1 owner one"}}},
		{"NoRecordFirst", []waiter{{"w0", ""}, {"w1", live + "inbox1 owner one"}}},
		{"GarbledRecordFirst", []waiter{{"w0", "not a record"}, {"w1", live + "inbox1 owner one"}}},
		{"AllGone", []waiter{{"w0", lapsed + "inbox0 gone"}, {"w1", ""}}},
		{"Empty", nil},
	}
	for _, qc := range queues {
		for _, fc := range fenceRecordCases {
			t.Run(qc.name+"/"+fc.name, func(t *testing.T) {
				type end struct {
					lock, fence, queue, waiters string
					lockTTL, fenceTTL           time.Duration
					reply                       any
					msgs                        []string
				}
				run := func(script, name string) end {
					keys := Layout{Prefix: DefaultPrefix}.Keys(name)
					require.NoError(t, c.Del(ctx, keys...).Err())
					require.NoError(t, c.Set(ctx, keys[KeyLock], "1w 1 tk "+owner, time.Minute).Err())
					switch fc.record {
					case none:
					case list:
						require.NoError(t, c.RPush(ctx, keys[KeyFence], "x").Err())
					default:
						require.NoError(t, c.Set(ctx, keys[KeyFence], fc.record, 0).Err())
					}
					for i, w := range qc.waiters {
						require.NoError(t, c.ZAdd(ctx, keys[KeyQueue], redis.Z{Score: float64(i + 1), Member: w.ticket}).Err())
						if w.rec != "" {
							require.NoError(t, c.HSet(ctx, keys[KeyWaiters], w.ticket, w.rec).Err())
						}
					}
					reply, err := c.Eval(ctx, script, keys, toAny(ReleaseArgs(owner, "", Classic, retention))...).Result()
					require.NoError(t, err)
					var e end
					e.reply = reply
					e.lock = c.Get(ctx, keys[KeyLock]).Val()
					e.lockTTL = c.PTTL(ctx, keys[KeyLock]).Val().Round(time.Second)
					if c.Type(ctx, keys[KeyFence]).Val() == "list" {
						e.fence = "list " + strings.Join(c.LRange(ctx, keys[KeyFence], 0, -1).Val(), ",")
					} else {
						e.fence = c.Get(ctx, keys[KeyFence]).Val()
					}
					e.fenceTTL = c.PTTL(ctx, keys[KeyFence]).Val().Round(time.Minute)
					e.queue = strings.Join(c.ZRangeArgs(ctx, redis.ZRangeArgs{Key: keys[KeyQueue], Start: 0, Stop: -1}).Val(), ",")
					e.waiters = strings.Join(c.HKeys(ctx, keys[KeyWaiters]).Val(), ",")
					e.msgs = msgs()
					return e
				}
				want := run(ref, "ref")
				got := run(release, "rel")
				assert.Equal(t, want, got)
				// And what hand_on does is a hand-off to the first live waiter.
				var head *waiter
				for i, w := range qc.waiters {
					if strings.HasPrefix(w.rec, live) {
						head = &qc.waiters[i]
						break
					}
				}
				switch {
				case head == nil || fc.want == "":
					assert.Empty(t, got.lock, "freed")
					assert.Equal(t, []string{":ch *"}, got.msgs)
				default:
					f := strings.Fields(head.rec)
					assert.Equal(t, "1w "+fc.want+" "+head.ticket+" "+strings.Join(f[4:], " "), got.lock)
					assert.Equal(t, 8*time.Second, got.lockTTL, "the grant lease")
					assert.Equal(t, fc.want, got.fence)
					ch := ":ch:" + f[3]
					if f[3] == NoInbox {
						ch = ":ch"
					}
					assert.Equal(t, []string{ch + " " + head.ticket + " " + fc.want}, got.msgs)
				}
			})
		}
	}
}

// published subscribes to every channel under the default prefix and
// returns a function that gives the messages published since its last
// call, as "<channel suffix after the hash tag> <payload>": all that came
// before a sentinel it publishes, so that no call waits for a timeout.
func published(t *testing.T, c *redis.Client) func() []string {
	t.Helper()
	ctx := context.Background()
	ps := c.PSubscribe(ctx, DefaultPrefix+":*")
	t.Cleanup(func() { _ = ps.Close() })
	_, err := ps.Receive(ctx)
	require.NoError(t, err)
	const sentinel = DefaultPrefix + ":sentinel"
	return func() []string {
		require.NoError(t, c.Publish(ctx, sentinel, "end").Err())
		var out []string
		for {
			m, err := ps.ReceiveTimeout(ctx, 10*time.Second)
			require.NoError(t, err)
			msg, ok := m.(*redis.Message)
			if !ok {
				continue
			}
			if msg.Channel == sentinel {
				return out
			}
			_, suffix, _ := strings.Cut(msg.Channel, "}")
			out = append(out, suffix+" "+msg.Payload)
		}
	}
}
