package rediscore

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/locker/driver"
)

// fixedClock is the TIME reply that fixedClockScript gives its script, and
// fixedNow the clock in µs as the scripts write it.
const (
	fixedClock = "{'1700000000', '12345'}" // TIME sends the µs unpadded
	fixedNow   = "1700000000012345"
)

// fixedClockScript returns src with every TIME call replaced by fixedClock,
// so that a test can put the fence record exactly at, below or above the
// clock.
func fixedClockScript(t *testing.T, src string) string {
	t.Helper()
	const call = "redis.call('TIME')"
	require.Contains(t, src, call)
	return strings.ReplaceAll(src, call, fixedClock)
}

// none and list stand for no fence record and a record of another type in
// fenceRecordCases.
const none, list = "<none>", "<list>"

// fenceRecordCases are fence records and the token issue_fence issues from
// each at fixedClock.
var fenceRecordCases = []struct {
	name   string
	record string
	want   string // the token; "" = none can be issued
}{
	{"NoRecord", none, fixedNow},
	{"OlderSameLength", "1699999999999999", fixedNow},
	{"OneBelow", "1700000000012344", fixedNow},
	{"Shorter", "42", fixedNow},
	{"Zero", "0", fixedNow},
	{"EqualToClock", fixedNow, "1700000000012346"},
	{"AboveClock", "1700000000012399", "1700000000012400"},
	{"AboveClockCarry", "1799999999999999", "1800000000000000"},
	{"Longer", "99999999999999999", "100000000000000000"},
	{"BelowMax", "9223372036854775806", "9223372036854775807"},
	{"LongerBytewiseBelow", "1000000000000000000", "1000000000000000001"}, // above the clock, in number
	// Below the clock byte by byte, of its length, but no token.
	{"SameLengthPoint", "1700000000.12345", ""},
	{"SameLengthSign", "+700000000012345", ""},
	{"SameLengthSpace", "17000000000 2345", ""},
	{"LeadingZero", "0700000000012345", ""},
	{"LeadingZeroShort", "007", ""},
	{"Max", "9223372036854775807", ""},
	{"AboveMax", "9223372036854775808", ""},
	{"FarAboveMax", "18446744073709551616", ""},
	{"AboveMaxBytewiseBelow", "10000000000000000000", ""},
	{"Empty", "", ""},
	{"Letters", "abc", ""},
	{"List", list, ""},
}

// TestAcquireIssuesFencesAsIssueFence: a free lock with nobody queued is
// taken with the token issue_fence of lib.lua issues for the same fence
// record and clock, whether the uncontended path settles it by itself or
// leaves it to the code below the helpers mark, and the record is left as
// issue_fence leaves it. A record without a token below 2^63-1 (of the
// clock's length or not, or of another type) fails the attempt with
// {-1, 0, 0}, the record as it was and no lock written.
func TestAcquireIssuesFencesAsIssueFence(t *testing.T) {
	c := startClient(t)
	ctx := context.Background()

	acquire := fixedClockScript(t, AcquireLua)
	issue := withLib("return issue_fence(KEYS[1], ARGV[1], " + fixedClock + ") or 'none'\n")
	keys := Layout{Prefix: DefaultPrefix}.Keys("fence")
	lockKey, fenceKey := keys[KeyLock], keys[KeyFence]
	const retention = time.Hour
	const refKey = "ref-fence" // where issue_fence runs on its own
	owner := "an owner"        // with a space, as the lock string allows

	for _, tc := range fenceRecordCases {
		for _, fair := range []bool{true, false} {
			t.Run(tc.name+"/fair="+strconv.FormatBool(fair), func(t *testing.T) {
				require.NoError(t, c.Del(ctx, lockKey, fenceKey, refKey).Err())
				for _, key := range []string{fenceKey, refKey} {
					switch tc.record {
					case none:
					case list:
						require.NoError(t, c.RPush(ctx, key, "x").Err())
					default:
						require.NoError(t, c.Set(ctx, key, tc.record, 0).Err())
					}
				}

				// issue_fence on its own, for the reference.
				ref, err := c.Eval(ctx, issue, []string{refKey}, Ms(retention)).Text()
				require.NoError(t, err)
				if tc.want == "" {
					assert.Equal(t, "none", ref, "issue_fence")
				} else {
					assert.Equal(t, tc.want, ref, "issue_fence")
				}

				ticket := "tk-" + tc.name
				req := driver.AcquireRequest{Owner: owner, Ticket: ticket, Lease: time.Minute}
				got, err := c.Eval(ctx, acquire, keys, toAny(AcquireArgs(req, fair, 10*time.Second, retention, Sharded, NoInbox))...).Slice()
				require.NoError(t, err)
				if tc.want == "" {
					assert.Equal(t, []any{int64(-1), int64(0), int64(0)}, got)
					assert.Zero(t, c.Exists(ctx, lockKey).Val(), "a lock was written")
					if tc.record == list {
						assert.Equal(t, "list", c.Type(ctx, fenceKey).Val())
						assert.Equal(t, []string{"x"}, c.LRange(ctx, fenceKey, 0, -1).Val())
					} else {
						assert.Equal(t, tc.record, c.Get(ctx, fenceKey).Val(), "the record changed")
					}
				} else {
					require.Equal(t, []any{int64(1), tc.want, int64(1)}, got)
					assert.Equal(t, "1 "+tc.want+" "+ticket+" "+owner, c.Get(ctx, lockKey).Val())
					assert.InDelta(t, time.Minute, c.PTTL(ctx, lockKey).Val(), float64(5*time.Second))
					assert.Equal(t, tc.want, c.Get(ctx, fenceKey).Val(), "the record holds the new token")
					assert.InDelta(t, retention, c.PTTL(ctx, fenceKey).Val(), float64(5*time.Second))
				}
				// The record ends as issue_fence leaves it, TTL included.
				if tc.record == list {
					assert.Equal(t, c.LRange(ctx, refKey, 0, -1).Val(), c.LRange(ctx, fenceKey, 0, -1).Val())
				} else {
					assert.Equal(t, c.Get(ctx, refKey).Val(), c.Get(ctx, fenceKey).Val())
				}
				assert.InDelta(t, c.PTTL(ctx, refKey).Val(), c.PTTL(ctx, fenceKey).Val(), float64(5*time.Second))
			})
		}
	}
}

// TestAcquireReleaseUncontended: on the real clock, the uncontended path
// issues the server time in µs, or the record + 1 when that is ahead, and
// release undoes a re-entered hold and then frees the lock.
func TestAcquireReleaseUncontended(t *testing.T) {
	c := startClient(t)
	ctx := context.Background()
	keys := Layout{Prefix: DefaultPrefix}.Keys("uncontended")
	owner := "o w n e r"
	clock := func() int64 {
		tm, err := c.Time(ctx).Result()
		require.NoError(t, err)
		return tm.UnixMicro()
	}
	acquire := func(ticket string, fair bool) []any {
		req := driver.AcquireRequest{Owner: owner, Ticket: ticket, Lease: time.Minute}
		r, err := c.Eval(ctx, AcquireLua, keys, toAny(AcquireArgs(req, fair, 10*time.Second, time.Hour, Sharded, NoInbox))...).Slice()
		require.NoError(t, err)
		return r
	}
	release := func(ticket string) int64 {
		n, err := c.Eval(ctx, ReleaseLua, keys, toAny(ReleaseArgs(owner, ticket, Sharded, time.Hour))...).Int64()
		require.NoError(t, err)
		return n
	}
	for _, fair := range []bool{true, false} {
		require.NoError(t, c.Del(ctx, keys[KeyFence]).Err())
		// No record, then a record of an earlier issue: the clock.
		for _, ahead := range []bool{false, false, true} {
			if ahead {
				// A record ahead of the clock (a clock that stepped back).
				require.NoError(t, c.Set(ctx, keys[KeyFence], strconv.FormatInt(clock()+int64(time.Hour/time.Microsecond), 10), 0).Err())
			}
			last, _ := c.Get(ctx, keys[KeyFence]).Int64()
			before := clock()
			r := acquire("t1", fair)
			after := clock()
			require.Len(t, r, 3)
			require.Equal(t, int64(1), r[0])
			fence, err := strconv.ParseInt(r[1].(string), 10, 64)
			require.NoError(t, err)
			if ahead {
				assert.Equal(t, last+1, fence)
			} else {
				assert.GreaterOrEqual(t, fence, before)
				assert.LessOrEqual(t, fence, after)
				assert.Greater(t, fence, last)
			}
			assert.Equal(t, r[1], c.Get(ctx, keys[KeyFence]).Val())
			rec, err := ParseRecord(c.Get(ctx, keys[KeyLock]).Val())
			require.NoError(t, err)
			assert.Equal(t, Record{Count: 1, Fence: fence, Ticket: "t1", Owner: owner}, rec)

			// Re-entry, then its release rebuilds the lock string.
			assert.Equal(t, []any{int64(1), r[1], int64(2)}, acquire("t2", fair))
			assert.Equal(t, int64(-1), release("t1"), "not the latest ticket")
			assert.Equal(t, int64(1), release(""))
			assert.Equal(t, "1 "+r[1].(string)+" t2 "+owner, c.Get(ctx, keys[KeyLock]).Val())
			assert.Equal(t, int64(0), release(""))
			assert.Zero(t, c.Exists(ctx, keys[KeyLock]).Val())
			assert.Equal(t, int64(-1), release(""), "released already")
		}
	}
}
