package rediscore

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/disgolock/disgo/internal/redistest"
	"github.com/disgolock/disgo/locker/driver"
)

// BenchmarkScriptServerTime measures the server time of the uncontended
// acquire+release pair of the mutex scripts, as Redis counts it (INFO
// commandstats usec of EVALSHA per pair, reported as redis-µs/pair), on a
// redis-server of its own, in fair and barging mode:
//
//   - assembled: the scripts as the adapters load them (AcquireLua,
//     ReleaseLua);
//   - whole-lib: the same sources with all of lib.lua prepended, as every
//     script was loaded before assemble.go: what giving each script only
//     its helpers, and defining the hand-off's at the mark, saves;
//   - commands-only: the commands of the pair in two scripts without any
//     logic (the lockbench floor-2script): what the rest costs.
//
// Pairs are pipelined 100 at a time, so that the client's round trips do
// not slow the run; the server time of a script does not depend on it.
//
//	go test -run '^$' -bench ScriptServerTime ./internal/rediscore/
func BenchmarkScriptServerTime(b *testing.B) {
	c := startClient(b)
	const commandsOnlyAcquire = `redis.call('GET', KEYS[1])
redis.call('ZRANGE', KEYS[3], 0, 0)
local t = redis.call('TIME')
redis.call('SET', KEYS[2], t[1], 'PX', ARGV[6], 'GET')
redis.call('SET', KEYS[1], '1 1 ' .. ARGV[2] .. ' ' .. ARGV[1], 'PX', ARGV[3])
return {1, t[1], 1}`
	const commandsOnlyRelease = `redis.call('GET', KEYS[1])
redis.call('DEL', KEYS[1])
return 0`
	variants := []struct{ name, acquire, release string }{
		{"assembled", AcquireLua, ReleaseLua},
		{"whole-lib", libLua + "\n" + acquireLua, libLua + "\n" + releaseLua},
		{"commands-only", commandsOnlyAcquire, commandsOnlyRelease},
	}
	keys := Layout{Prefix: DefaultPrefix}.Keys("servertime")
	for _, v := range variants {
		for _, fair := range []bool{true, false} {
			mode := "fair"
			if !fair {
				mode = "barging"
			}
			b.Run(v.name+"/"+mode, func(b *testing.B) {
				acqArgs := func(req driver.AcquireRequest) []string {
					return AcquireArgs(req, fair, 10*time.Second, time.Minute, Sharded, NoInbox)
				}
				relArgs := ReleaseArgs(pairOwner, "", Sharded, time.Minute)
				reportServerTime(b, c, pairBatch(b, c, v.acquire, v.release, keys, acqArgs, relArgs), "redis-µs/pair")
			})
		}
	}
}

// BenchmarkKindPairServerTime is BenchmarkScriptServerTime for the
// uncontended acquire+release pair of a read hold, a write hold and a
// 1-permit semaphore holding:
//
//   - assembled: KindAcquireLua and KindReleaseLua, whose common cases
//     run before any helper is defined;
//
//   - general: the same scripts with those common cases cut out, so that
//     every call defines the helpers and goes the general way: what the
//     common cases save.
//
// Pairs are pipelined as in BenchmarkScriptServerTime:
//
//	go test -run '^$' -bench KindPairServerTime ./internal/rediscore/
func BenchmarkKindPairServerTime(b *testing.B) {
	c := startClient(b)
	variants := []struct{ name, acquire, release string }{
		{"assembled", KindAcquireLua, KindReleaseLua},
		{"general", kindAcquireGeneral(b), kindReleaseGeneral(b)},
	}
	for _, v := range variants {
		for _, kc := range []struct {
			name string
			kind Kind
			k    byte
		}{{"read", RW, 'r'}, {"write", RW, 'w'}, {"semaphore", Semaphore, 's'}} {
			keys := Layout{Prefix: DefaultPrefix}.KindKeys(kc.kind, "servertime")
			for _, fair := range []bool{true, false} {
				mode := "fair"
				if !fair {
					mode = "barging"
				}
				b.Run(v.name+"/"+kc.name+"/"+mode, func(b *testing.B) {
					acqArgs := func(req driver.AcquireRequest) []string {
						req.Permits, req.Limit = 1, 1
						return KindAcquireArgs(kc.k, req, fair, 10*time.Second, time.Minute, Sharded, NoInbox)
					}
					relArgs := KindReleaseArgs(kc.k, pairOwner, "", Sharded, time.Minute)
					reportServerTime(b, c, pairBatch(b, c, v.acquire, v.release, keys, acqArgs, relArgs), "redis-µs/pair")
				})
			}
		}
	}
}

// pairOwner is the owner of the pairs pairBatch runs.
const pairOwner = "servertime-owner"

// pairBatch loads the acquire and release scripts and returns a batch for
// reportServerTime: n uncontended pairs on keys, pipelined, each acquire
// with a fresh ticket of pairOwner (its ARGV from acqArgs) and each
// release with relArgs. Every acquire must acquire and every release end
// the holding (reply 0).
func pairBatch(b *testing.B, c *redis.Client, acquire, release string, keys []string, acqArgs func(driver.AcquireRequest) []string, relArgs []string) func(n int) {
	ctx := context.Background()
	acq, err := c.ScriptLoad(ctx, acquire).Result()
	if err != nil {
		b.Fatal(err)
	}
	rel, err := c.ScriptLoad(ctx, release).Result()
	if err != nil {
		b.Fatal(err)
	}
	rargs := toAny(relArgs)
	return func(n int) {
		p := c.Pipeline()
		for i := range n {
			req := driver.AcquireRequest{Owner: pairOwner, Ticket: "t" + strconv.Itoa(i), Lease: time.Minute}
			p.EvalSha(ctx, acq, keys, toAny(acqArgs(req))...)
			p.EvalSha(ctx, rel, keys, rargs...)
		}
		cmds, err := p.Exec(ctx)
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < len(cmds); i += 2 {
			r, _ := cmds[i].(*redis.Cmd).Slice()
			if len(r) == 0 || r[0] != int64(1) {
				b.Fatalf("acquire %d: %v", i/2, r)
			}
			if n, _ := cmds[i+1].(*redis.Cmd).Int64(); n != 0 {
				b.Fatalf("release %d: %d", i/2, n)
			}
		}
	}
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// startClient starts a redis-server of tb's own and returns a client of
// it, closed at the end of tb.
func startClient(tb testing.TB) *redis.Client {
	srv := redistest.Start(tb)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr})
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// reportServerTime runs batch(100) once to warm up, then for each
// iteration of b, and reports the EVALSHA usec that INFO commandstats
// counted per unit of a batch (one pair, one hand-off) as metric.
func reportServerTime(b *testing.B, c *redis.Client, batch func(n int), metric string) {
	batch(100)
	if err := c.ConfigResetStat(context.Background()).Err(); err != nil {
		b.Fatal(err)
	}
	n := 0
	for b.Loop() {
		batch(100)
		n += 100
	}
	b.ReportMetric(evalshaUsec(b, c)/float64(n), metric)
}

// evalshaUsec returns the usec that INFO commandstats counts for EVALSHA.
func evalshaUsec(b *testing.B, c *redis.Client) float64 {
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_evalsha:")
		if !ok {
			continue
		}
		for _, kv := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(kv, "usec="); ok {
				us, err := strconv.ParseFloat(v, 64)
				if err != nil {
					b.Fatal(err)
				}
				return us
			}
		}
	}
	b.Fatal("no cmdstat_evalsha in INFO commandstats")
	return 0
}

// BenchmarkHandOffServerTime measures the server time of release.lua's
// hand-off to a live waiter (INFO commandstats usec of EVALSHA per
// release, reported as redis-µs/handoff), on a redis-server of its own:
//
//   - assembled: ReleaseLua, which takes the common hand-off before any
//     helper is defined;
//   - hand_on: the same release with the hand-off left to hand_on of
//     lib.lua from its start, as release.lua did before: what spelling out
//     the common case saves;
//   - commands-only: the hand-off's commands in one script without any
//     logic (the lockbench floor-handoffscript): what the rest costs.
//
// Each release finds the lock held with the "w" mark and one live waiter
// queued, written just before it in the same pipeline of 100 hand-offs.
// Nobody subscribes to the grant's channel, so the publish costs less than
// it does for a waiting process.
//
//	go test -run '^$' -bench HandOffServerTime ./internal/rediscore/
func BenchmarkHandOffServerTime(b *testing.B) {
	c := startClient(b)
	ctx := context.Background()
	cut := strings.Index(releaseLua, "local popped = redis.call('ZPOPMIN', KEYS[3])")
	if cut < 0 {
		b.Fatal("release.lua: no hand-off to cut")
	}
	handOnOnly := withLib(releaseLua[:cut] + HelpersMark + "\nhand_on(ARGV[3], ARGV[4])\nreturn 0\n")
	const commandsOnly = `redis.call('GET', KEYS[1])
local head = redis.call('ZPOPMIN', KEYS[3])[1]
redis.call('HGET', KEYS[5], head)
redis.call('HDEL', KEYS[5], head)
local t = redis.call('TIME')
redis.call('SET', KEYS[2], t[1], 'PX', ARGV[4], 'GET')
redis.call('SET', KEYS[1], '1w ' .. t[1] .. ' ' .. head, 'PX', 8000)
redis.pcall(ARGV[3], KEYS[4] .. ':inbox', head .. ' ' .. t[1])
return 0`
	variants := []struct{ name, release string }{
		{"assembled", ReleaseLua},
		{"hand_on", handOnOnly},
		{"commands-only", commandsOnly},
	}
	keys := Layout{Prefix: DefaultPrefix}.Keys("handoff-servertime")
	const owner = "servertime-owner"
	relArgs := toAny(ReleaseArgs(owner, "", Sharded, time.Minute))
	for _, v := range variants {
		b.Run(v.name, func(b *testing.B) {
			rel, err := c.ScriptLoad(ctx, v.release).Result()
			if err != nil {
				b.Fatal(err)
			}
			batch := func(n int) {
				p := c.Pipeline()
				for range n {
					p.Set(ctx, keys[KeyLock], "1w 1 tk "+owner, time.Minute)
					p.ZAdd(ctx, keys[KeyQueue], redis.Z{Score: 1, Member: "w"})
					// A heartbeat deadline far ahead: the waiter is live.
					p.HSet(ctx, keys[KeyWaiters], "w", "99999999999999 10000 8000 inbox waiter")
					p.EvalSha(ctx, rel, keys, relArgs...)
				}
				if _, err := p.Exec(ctx); err != nil {
					b.Fatal(err)
				}
				got, want := c.Get(ctx, keys[KeyLock]).Val(), " w waiter" // ticket and owner of the waiter
				if v.name == "commands-only" {
					want = " w" // the ticket only
				}
				if !strings.HasPrefix(got, "1w ") || !strings.HasSuffix(got, want) {
					b.Fatalf("not handed over: %q", got)
				}
			}
			reportServerTime(b, c, batch, "redis-µs/handoff")
		})
	}
}
