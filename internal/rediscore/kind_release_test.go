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

// withoutCommonCase assembles src without the code from the end of its
// first line that ends with after to its helpers mark: the common case a
// kind's script takes before any helper is defined. Every call then goes
// the general way.
func withoutCommonCase(t testing.TB, src, after string) string {
	t.Helper()
	start := strings.Index(src, after+"\n") + len(after) + 1
	end := strings.Index(src, "\n"+HelpersMark+"\n")
	require.True(t, start > len(after) && end > start, "the common case is not where the test looks for it")
	return withKindLib(src[:start] + src[end+1:])
}

// kindReleaseGeneral is kind_release.lua without its common case.
func kindReleaseGeneral(t testing.TB) string {
	return withoutCommonCase(t, kindReleaseLua, "\n  return -1\nend")
}

// TestKindReleaseCommonCaseAsGeneral: kind_release.lua, which ends the
// common case (the last acquisition of the only holding, no flag, nothing
// lapsed) before any helper is defined, ends in the state the general path
// alone reaches from the same state, with the same reply and messages: for
// each kind, on a name held once, re-entered, held by two owners, with the
// holding or another one lapsed, with waiters flagged or queued, with a
// garbled record, and for tickets that match, do not, or are not given.
func TestKindReleaseCommonCaseAsGeneral(t *testing.T) {
	c := startClient(t)
	ctx := context.Background()
	release := fixedClockScript(t, KindReleaseLua)
	general := fixedClockScript(t, kindReleaseGeneral(t))
	require.NotEqual(t, release, general)
	const clockMs = 1700000000012 // fixedClock in ms
	live, lapsed := int64(clockMs+60000), int64(clockMs)
	const retention = time.Hour

	msgs := published(t, c)

	type holding struct {
		id, rec string
		dl      int64 // lease deadline, ms; 0: none in the leases zset
	}
	type state struct {
		name     string
		holdings []holding
		used     string // "": none
		wait     string // "-": no field
		queued   bool   // a live waiter queued (with the "q" flag it can be granted)
	}
	for _, kc := range []struct {
		kind Kind
		k    byte
		w    int64 // the weight of one holding
	}{{RW, 'r', 1}, {RW, 'w', RWWeight}, {Semaphore, 's', 2}} {
		id := string(kc.k) + " holder"
		rec := func(n int, ticket string) string {
			return strconv.Itoa(n) + " 5 " + ticket + " " + strconv.FormatInt(kc.w, 10)
		}
		w := strconv.FormatInt(kc.w, 10)
		other := string(kc.k) + " other"
		if kc.k == 'w' {
			other = "r other" // beside a write hold, only its owner's read hold fits; the test does not mind
		}
		states := []state{
			{"Once", []holding{{id, rec(1, "t1"), live}}, w, "-", false},
			{"OnceEmptyFlags", []holding{{id, rec(1, "t1"), live}}, w, "", false},
			{"Reentered", []holding{{id, rec(2, "t1"), live}}, w, "-", false},
			{"TwoOwners", []holding{{id, rec(1, "t1"), live}, {other, rec(1, "t2"), live}}, strconv.FormatInt(2*kc.w, 10), "-", false},
			{"OwnLapsed", []holding{{id, rec(1, "t1"), lapsed}}, w, "-", false},
			{"StaleLapsedEntry", []holding{{id, rec(1, "t1"), live}, {"s stale", "", lapsed}}, w, "-", false},
			{"NoLeaseEntry", []holding{{id, rec(1, "t1"), 0}}, w, "-", false},
			{"QueueFlag", []holding{{id, rec(1, "t1"), live}}, w, "q", true},
			{"QueuedWithoutFlag", []holding{{id, rec(1, "t1"), live}}, w, "-", true},
			{"BargingFlag", []holding{{id, rec(1, "t1"), live}}, w, "b", false},
			{"BothFlags", []holding{{id, rec(1, "t1"), live}}, w, "qb", true},
			{"GarbledRecord", []holding{{id, "not a record", live}}, w, "-", false},
			{"UsedDiffers", []holding{{id, rec(1, "t1"), live}}, strconv.FormatInt(kc.w+1, 10), "-", false},
			{"OtherOwnerOnly", []holding{{other, rec(1, "t2"), live}}, w, "-", false},
			{"NoUsedField", []holding{{id, rec(1, "t1"), live}}, "", "-", false},
		}
		for _, st := range states {
			for _, ticket := range []string{"", "t1", "tX"} {
				t.Run(string(kc.k)+"/"+st.name+"/ticket="+ticket, func(t *testing.T) {
					type end struct {
						holders map[string]string
						leases  []redis.Z
						queue   []string
						ttl     time.Duration
						reply   any
						msgs    []string
					}
					run := func(script, name string) end {
						keys := Layout{Prefix: DefaultPrefix}.KindKeys(kc.kind, name)
						require.NoError(t, c.Del(ctx, keys...).Err())
						var fields []any
						for _, h := range st.holdings {
							if h.rec != "" {
								fields = append(fields, h.id, h.rec)
							}
							if h.dl > 0 {
								require.NoError(t, c.ZAdd(ctx, keys[KindKeyLeases], redis.Z{Score: float64(h.dl), Member: h.id}).Err())
							}
						}
						if st.used != "" {
							fields = append(fields, "used", st.used)
						}
						if st.wait != "-" {
							fields = append(fields, "wait", st.wait)
						}
						if kc.kind == Semaphore {
							fields = append(fields, "limit", "5")
						}
						require.NoError(t, c.HSet(ctx, keys[KindKeyHolders], fields...).Err())
						require.NoError(t, c.PExpire(ctx, keys[KindKeyHolders], time.Minute).Err())
						if st.queued {
							require.NoError(t, c.ZAdd(ctx, keys[KindKeyQueue], redis.Z{Score: 1, Member: "w1"}).Err())
							require.NoError(t, c.HSet(ctx, keys[KindKeyWaiters], "w1",
								strconv.FormatInt(live, 10)+" 10000 8000 inbox1 "+string(kc.k)+" 1 0 waiter").Err())
						}
						reply, err := c.Eval(ctx, script, keys, toAny(KindReleaseArgs(kc.k, "holder", ticket, Classic, retention))...).Result()
						require.NoError(t, err)
						return end{
							holders: c.HGetAll(ctx, keys[KindKeyHolders]).Val(),
							leases:  c.ZRangeWithScores(ctx, keys[KindKeyLeases], 0, -1).Val(),
							queue:   c.ZRange(ctx, keys[KindKeyQueue], 0, -1).Val(),
							ttl:     c.PTTL(ctx, keys[KindKeyHolders]).Val().Round(time.Second),
							reply:   reply,
							msgs:    msgs(),
						}
					}
					want := run(general, "general")
					got := run(release, "release")
					assert.Equal(t, want, got)
				})
			}
		}
	}
}
