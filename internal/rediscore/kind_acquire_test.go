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

	"github.com/disgolock/disgo/locker/driver"
)

// kindAcquireGeneral is kind_acquire.lua without its common case.
func kindAcquireGeneral(t testing.TB) string {
	return withoutCommonCase(t, kindAcquireLua, "local head0, leases_read, fnow, flast = nil, false, false, false")
}

// TestKindAcquireFirstHoldingAsGeneral: kind_acquire.lua, which takes the
// first holding of a name with nobody queued ahead before any helper is
// defined, ends in the state the general path alone reaches from the same
// state, with the same reply (or error) and messages: for each kind and
// mode (and for permits or a lease of 0, which the facade never sends),
// for every fence record of fenceRecordCases (which the common case writes
// before it knows whether it can settle it), and for an empty queue, a
// live waiter at the head, a lapsed one, the caller's own ticket at the
// head, and a holders' record that holds only a flag (of barging waiters,
// or of a queue that is empty by now).
func TestKindAcquireFirstHoldingAsGeneral(t *testing.T) {
	c := startClient(t)
	ctx := context.Background()
	acquire := fixedClockScript(t, KindAcquireLua)
	general := fixedClockScript(t, kindAcquireGeneral(t))
	require.NotEqual(t, acquire, general)
	const clockMs = 1700000000012 // fixedClock in ms
	live, lapsed := strconv.Itoa(clockMs+60000), strconv.Itoa(clockMs)
	const retention = time.Hour

	msgs := published(t, c)

	type queued struct{ ticket, rec string }
	for _, kc := range []struct {
		name           string
		kind           Kind
		k              byte
		permits, limit int
		lease          time.Duration
	}{
		{"read", RW, 'r', 0, 0, time.Minute}, {"write", RW, 'w', 0, 0, time.Minute},
		{"sem", Semaphore, 's', 2, 3, time.Minute}, {"semOverLimit", Semaphore, 's', 4, 3, time.Minute},
		// Outside the driver contract, which the facade enforces; the
		// script still holds to one behaviour.
		{"semNoPermits", Semaphore, 's', 0, 3, time.Minute}, {"readNoLease", RW, 'r', 0, 0, 0},
	} {
		waiter := func(deadline, kind string) string {
			return deadline + " 10000 8000 inbox1 " + kind + " 1 " + strconv.Itoa(kc.limit) + " someone"
		}
		wk := string(kc.k)
		queues := []struct {
			name  string
			queue []queued
			flag  string // the holders' record's "wait" field; "": no record
		}{
			{"Empty", nil, ""},
			{"LiveHead", []queued{{"w1", waiter(live, wk)}}, ""},
			{"LapsedHead", []queued{{"w0", waiter(lapsed, wk)}}, ""},
			{"OwnTicketHead", []queued{{"t1", waiter(live, wk)}}, ""},
			{"OnlyABargingFlag", nil, "b"},
			{"OnlyAQueueFlag", nil, "q"},
		}
		for _, mode := range []struct {
			name string
			fair bool
			wttl time.Duration
		}{{"FairWaits", true, 10 * time.Second}, {"FairOnce", true, 0}, {"Barging", false, 0}} {
			for _, qc := range queues {
				for _, fc := range fenceRecordCases {
					t.Run(kc.name+"/"+mode.name+"/"+qc.name+"/"+fc.name, func(t *testing.T) {
						type end struct {
							holders, waiters map[string]string
							leases           []redis.Z
							queue            []string
							fence            string
							holdersTTL       time.Duration
							leasesTTL        time.Duration
							fenceTTL         time.Duration
							reply            any
							err              string
							msgs             []string
						}
						run := func(script, name string) end {
							keys := Layout{Prefix: DefaultPrefix}.KindKeys(kc.kind, name)
							require.NoError(t, c.Del(ctx, keys...).Err())
							switch fc.record {
							case none:
							case list:
								require.NoError(t, c.RPush(ctx, keys[KindKeyFence], "x").Err())
							default:
								require.NoError(t, c.Set(ctx, keys[KindKeyFence], fc.record, 0).Err())
							}
							for i, q := range qc.queue {
								require.NoError(t, c.ZAdd(ctx, keys[KindKeyQueue], redis.Z{Score: float64(i + 1), Member: q.ticket}).Err())
								require.NoError(t, c.HSet(ctx, keys[KindKeyWaiters], q.ticket, q.rec).Err())
							}
							if qc.flag != "" {
								require.NoError(t, c.HSet(ctx, keys[KindKeyHolders], "wait", qc.flag).Err())
							}
							req := driver.AcquireRequest{Owner: "o", Ticket: "t1", Lease: kc.lease, Permits: kc.permits, Limit: kc.limit}
							reply, err := c.Eval(ctx, script, keys, toAny(KindAcquireArgs(kc.k, req, mode.fair, mode.wttl, retention, Classic, "in"))...).Result()
							var e end
							e.reply = reply
							if err != nil {
								e.err = err.Error()
								// The error names the script by its SHA1: keep the message.
								e.err, _, _ = strings.Cut(e.err, " script: ")
							}
							e.holders = c.HGetAll(ctx, keys[KindKeyHolders]).Val()
							e.waiters = c.HGetAll(ctx, keys[KindKeyWaiters]).Val()
							e.leases = c.ZRangeWithScores(ctx, keys[KindKeyLeases], 0, -1).Val()
							e.queue = c.ZRange(ctx, keys[KindKeyQueue], 0, -1).Val()
							if c.Type(ctx, keys[KindKeyFence]).Val() == "list" {
								e.fence = "list " + strings.Join(c.LRange(ctx, keys[KindKeyFence], 0, -1).Val(), ",")
							} else {
								e.fence = c.Get(ctx, keys[KindKeyFence]).Val()
							}
							e.holdersTTL = c.PTTL(ctx, keys[KindKeyHolders]).Val().Round(time.Second)
							e.leasesTTL = c.PTTL(ctx, keys[KindKeyLeases]).Val().Round(time.Second)
							e.fenceTTL = c.PTTL(ctx, keys[KindKeyFence]).Val().Round(time.Minute)
							e.msgs = msgs()
							return e
						}
						want := run(general, "general")
						got := run(acquire, "acquire")
						assert.Equal(t, want, got)
					})
				}
			}
		}
	}
}
