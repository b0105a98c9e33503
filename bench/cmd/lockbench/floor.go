package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"

	"github.com/disgolock/disgo/internal/token"
)

// The floors are not locks: they measure what parts of disgo's uncontended
// pair cost on the server, in the same run and scenarios as the others.
// They never wait and overwrite a taken key, so they run only where every
// key has one user (uncontended, parallel, capacity).

// floorAcquire runs, with no Lua logic between the calls, the commands of
// disgo's uncontended fair acquire (acquire.lua: GET lock, ZRANGE queue 0 0,
// TIME, SET fence PX … GET, SET lock PX).
//
// KEYS[1] lock string, KEYS[2] fence string, KEYS[3] queue zset
// ARGV[1] lock value, ARGV[2] lease ms, ARGV[3] fence retention ms
// Reply: the lock's value before the call (nil when it was free)
const floorAcquire = `local v = redis.call('GET', KEYS[1])
redis.call('ZRANGE', KEYS[3], 0, 0)
local t = redis.call('TIME')
redis.call('SET', KEYS[2], t[1], 'PX', ARGV[3], 'GET')
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return v`

// floorRelease runs the commands of disgo's uncontended release
// (release.lua: GET, DEL), with no Lua logic.
//
// KEYS[1] lock string
// Reply: the lock's value before the call (nil when it was free)
const floorRelease = `local v = redis.call('GET', KEYS[1])
redis.call('DEL', KEYS[1])
return v`

// floorEmpty is the script of both calls of floor-emptyscripts: the fixed
// cost of one EVALSHA.
//
// KEYS[1] lock name (unused)
// Reply: 1
const floorEmpty = `return 1`

// Names of the floor implementations.
const (
	floor2Script        = "floor-2script"
	floor2ScriptRueidis = "floor-2script-rueidis"
	floor2ScriptPiped   = "floor-2script-autopipe"
	floorEmptyScripts   = "floor-emptyscripts"
	floorPublish        = "floor-publish"
	floorHandoffScript  = "floor-handoffscript"
)

// floorNames are the floor rows, which ratio columns compare against.
var floorNames = []string{floor2Script, floor2ScriptRueidis, floor2ScriptPiped, floorEmptyScripts, "baseline-2rtt"}

// floors returns the floor implementations.
func floors() []Impl {
	return []Impl{
		{
			Name: floor2Script,
			Note: "floor, not a lock: on go-redis, EVALSHA of a script that runs exactly the commands of disgo's uncontended fair acquire (GET lock, ZRANGE queue 0 0, TIME, SET fence PX … GET, SET lock PX) with no Lua logic between them, then EVALSHA of GET + DEL; what disgo's command set alone costs",
			Open: func(addr string, _ openOpts) (Instance, error) {
				return &floorScriptsInst{floorLock: floorLock{owner: token.New()}, client: newGoRedis(addr)}, nil
			},
		},
		{
			Name: floor2ScriptRueidis,
			Note: "floor, not a lock: " + floor2Script + "'s two scripts on a rueidis client (auto-pipelining, as disgo's rueidis adapter uses it); what disgo's command set alone costs there",
			Open: func(addr string, _ openOpts) (Instance, error) {
				c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}})
				if err != nil {
					return nil, err
				}
				return &floorScriptsRueidisInst{floorLock: floorLock{owner: token.New()}, client: c}, nil
			},
		},
		{
			Name: floor2ScriptPiped,
			Note: "floor, not a lock: " + floor2Script + "'s two scripts through go-redis' AutoPipeliner, which queues every command and sends the queue as one pipeline (it does not bound a queued call by its context's deadline, which is why disgo's adapter refuses it); what disgo's command set alone costs on go-redis when every call is pipelined, the floor of the go-redis adapter's parallel target",
			Open: func(addr string, _ openOpts) (Instance, error) {
				c := newGoRedis(addr)
				ap, err := c.AutoPipeline()
				if err != nil {
					_ = c.Close()
					return nil, err
				}
				return &floorScriptsInst{floorLock: floorLock{owner: token.New()}, client: c, pipe: ap}, nil
			},
		},
		{
			Name: floorEmptyScripts,
			Note: "floor, not a lock: on go-redis, two EVALSHA of `return 1` per pair; the fixed cost of two script calls",
			Open: func(addr string, _ openOpts) (Instance, error) {
				return &floorEmptyInst{client: newGoRedis(addr)}, nil
			},
		},
		{
			Name: floorPublish, HandOffFloor: true,
			Note: "hand-off floor, not a lock: on go-redis, a release is one SPUBLISH to the channel of the waiting instance and its wait ends when the message arrives (who holds and who waits is kept in this process); the fastest a hand-off by a pushed message can be on this machine",
			Open: openFloorPublish,
		},
		{
			Name: floorHandoffScript, HandOffFloor: true,
			Note: "hand-off floor, not a lock: " + floorPublish + " whose release is one EVALSHA of a script that runs exactly the commands of disgo's hand-off (GET lock, ZPOPMIN queue, HGET and HDEL the waiter's record, TIME, SET fence PX … GET, SET lock PX, SPUBLISH to the waiter's channel) with no Lua logic between them, on go-redis; a waiter first queues itself (ZADD, HSET) before it waits, as disgo's waiters do; what disgo's hand-off command set alone costs",
			Open: func(addr string, o openOpts) (Instance, error) { return openFloorHandoff(addr, o, true) },
		},
	}
}

// floorHandoff runs, with no Lua logic between the calls, the commands of
// disgo's hand-off (release.lua's hand_on: GET lock, ZPOPMIN queue, HGET and
// HDEL the head's record, TIME, SET fence PX … GET, SET lock PX, SPUBLISH
// the grant).
//
// KEYS[1] lock string, KEYS[2] fence string, KEYS[3] queue zset, KEYS[4]
// waiters hash
// ARGV[1] fence retention ms, ARGV[2] lease ms, ARGV[3] the waiter's channel
// Reply: 0
const floorHandoff = `redis.call('GET', KEYS[1])
local head = redis.call('ZPOPMIN', KEYS[3])[1] or '-'
redis.call('HGET', KEYS[4], head)
redis.call('HDEL', KEYS[4], head)
local t = redis.call('TIME')
redis.call('SET', KEYS[2], t[1], 'PX', ARGV[1], 'GET')
redis.call('SET', KEYS[1], '1w ' .. t[1] .. ' ' .. head, 'PX', ARGV[2])
redis.pcall('SPUBLISH', ARGV[3], head .. ' ' .. t[1])
return 0`

var (
	floorAcquireLua    = rueidis.NewLuaScript(floorAcquire)
	floorReleaseLua    = rueidis.NewLuaScript(floorRelease)
	floorAcquireScript = redis.NewScript(floorAcquire)
	floorReleaseScript = redis.NewScript(floorRelease)
	floorEmptyScript   = redis.NewScript(floorEmpty)
	floorHandoffLua    = redis.NewScript(floorHandoff)
)

// errFloorShared says that a floor found its key in use: the scenario gave
// one key to more than one user, which the floors do not support.
var errFloorShared = errors.New("floor: key in use by another caller (floors only run on keys of their own)")

// Arguments of floor-2script, sized like disgo's.
const (
	floorLeaseMs     = "8000"
	floorRetentionMs = "16000"
)

// floorLock makes the keys and the lock value of the floor-2script rows.
type floorLock struct {
	owner string
	seq   atomic.Int64
}

// next returns keys laid out like disgo's (one hash tag) and a lock value
// shaped like disgo's ("1 <fence> <ticket> <owner>").
func (l *floorLock) next(key string) (keys []string, val string) {
	keys = []string{"{" + key + "}:lock", "{" + key + "}:fence", "{" + key + "}:q"}
	return keys, fmt.Sprintf("1 %d %s %s", time.Now().UnixMicro(), strconv.FormatInt(l.seq.Add(1), 10), l.owner)
}

// floorScriptsInst is floor-2script, and floor-2script-autopipe when pipe
// is set.
type floorScriptsInst struct {
	floorLock
	client *redis.Client
	pipe   *redis.AutoPipeliner // the client's, or nil: calls go to the client
}

// run is what the scripts are sent through.
func (f *floorScriptsInst) run() redis.Scripter {
	if f.pipe != nil {
		return f.pipe
	}
	return f.client
}

func (f *floorScriptsInst) Lock(ctx context.Context, key string) (Unlock, error) {
	keys, val := f.next(key)
	err := floorAcquireScript.Run(ctx, f.run(), keys, val, floorLeaseMs, floorRetentionMs).Err()
	switch {
	case err == nil:
		return nil, errFloorShared
	case !errors.Is(err, redis.Nil):
		return nil, err
	}
	return func(ctx context.Context) error {
		v, err := floorReleaseScript.Run(ctx, f.run(), keys[:1]).Text()
		if err == nil && v != val {
			err = errFloorShared
		}
		return err
	}, nil
}

func (f *floorScriptsInst) Close() error {
	if f.pipe != nil {
		_ = f.pipe.Close()
	}
	return f.client.Close()
}

// floorScriptsRueidisInst is floorScriptsInst on a rueidis client.
type floorScriptsRueidisInst struct {
	floorLock
	client rueidis.Client
}

func (f *floorScriptsRueidisInst) Lock(ctx context.Context, key string) (Unlock, error) {
	keys, val := f.next(key)
	err := floorAcquireLua.Exec(ctx, f.client, keys, []string{val, floorLeaseMs, floorRetentionMs}).Error()
	switch {
	case err == nil:
		return nil, errFloorShared
	case !rueidis.IsRedisNil(err):
		return nil, err
	}
	return func(ctx context.Context) error {
		v, err := floorReleaseLua.Exec(ctx, f.client, keys[:1], nil).ToString()
		if err == nil && v != val {
			err = errFloorShared
		}
		return err
	}, nil
}

func (f *floorScriptsRueidisInst) Close() error { f.client.Close(); return nil }

type floorEmptyInst struct{ client *redis.Client }

func (f *floorEmptyInst) Lock(ctx context.Context, key string) (Unlock, error) {
	keys := []string{key}
	if err := floorEmptyScript.Run(ctx, f.client, keys).Err(); err != nil {
		return nil, err
	}
	return func(ctx context.Context) error { return floorEmptyScript.Run(ctx, f.client, keys).Err() }, nil
}

func (f *floorEmptyInst) Close() error { return f.client.Close() }

// allImpls is every implementation the command knows: disgo's, the peers,
// the baseline and the floors.
func allImpls(bsmBackoff time.Duration) []Impl {
	return append(append(append([]Impl(nil), registry...), peers(bsmBackoff)...), floors()...)
}

// floorPublishInst is the hand-off floor: the shortest path by which a
// release can reach a waiter in another process through Redis. Unlock is
// one SPUBLISH to the waiter's own channel, and the waiter holds when its
// pub/sub connection delivers the message to its waiting goroutine: the
// same path as a disgo grant (one command, its push to a subscribed
// connection, one goroutine woken), without a script or any state in
// Redis. Which instance holds and which waits is kept in this process
// (floorSlots), so it only works among instances of one process, as in the
// hand-off scenario. With script set it is floor-handoffscript: the release
// runs disgo's hand-off commands (floorHandoff) in one script, SPUBLISH
// last, on Redis state that a waiter writes before it waits (queue).
type floorPublishInst struct {
	script bool // floor-handoffscript: queue before waiting, release by floorHandoff
	client *redis.Client
	ps     *redis.PubSub
	id     string
	msgs   chan struct{} // one per message on the instance's channel
	done   chan struct{} // closed when the receiving goroutine has ended
}

// floorSlot is the in-process state of one key of floor-publish.
type floorSlot struct {
	mu      sync.Mutex
	held    bool
	waiting *floorPublishInst // the instance whose Lock waits, nil if none
}

// floorSlots maps a key to its *floorSlot.
var floorSlots sync.Map

func slotOf(key string) *floorSlot {
	s, _ := floorSlots.LoadOrStore(key, new(floorSlot))
	return s.(*floorSlot)
}

func openFloorPublish(addr string, o openOpts) (Instance, error) {
	return openFloorHandoff(addr, o, false)
}

// openFloorHandoff opens floor-publish, or floor-handoffscript when script
// is set.
func openFloorHandoff(addr string, _ openOpts, script bool) (Instance, error) {
	f := &floorPublishInst{script: script, client: newGoRedis(addr), id: token.New(), msgs: make(chan struct{}, 1), done: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f.ps = f.client.SSubscribe(ctx, f.channel())
	if _, err := f.ps.Receive(ctx); err != nil { // the subscription's confirmation
		_ = f.ps.Close()
		_ = f.client.Close()
		return nil, fmt.Errorf("floor-publish: subscribe: %w", err)
	}
	go func() {
		defer close(f.done)
		for {
			if _, err := f.ps.ReceiveMessage(context.Background()); err != nil {
				return // closed
			}
			f.msgs <- struct{}{}
		}
	}()
	return f, nil
}

func (f *floorPublishInst) channel() string { return "lockbench:floor-publish:{" + f.id + "}" }

// handoffKeys are the keys of floor-handoffscript for key, as floorHandoff
// takes them.
func handoffKeys(key string) []string {
	p := "lockbench:floor-handoff:{" + key + "}:"
	return []string{p + "lock", p + "fence", p + "q", p + "qw"}
}

// queue writes the waiter's place and record as a disgo waiter's attempt
// does (ZADD, HSET), in one round trip, before it waits.
func (f *floorPublishInst) queue(ctx context.Context, key string) error {
	k := handoffKeys(key)
	_, err := f.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.ZAdd(ctx, k[2], redis.Z{Score: float64(time.Now().UnixNano()), Member: f.id})
		p.HSet(ctx, k[3], f.id, strconv.FormatInt(time.Now().UnixMilli()+10000, 10)+" 10000 8000 "+f.id+" "+f.id)
		return nil
	})
	return err
}

// Lock holds at once when nobody does; otherwise it waits for the holder's
// message.
func (f *floorPublishInst) Lock(ctx context.Context, key string) (Unlock, error) {
	s := slotOf(key)
	unlock := func(ctx context.Context) error { return f.unlock(ctx, key, s) }
	s.mu.Lock()
	if !s.held {
		s.held = true
		s.mu.Unlock()
		return unlock, nil
	}
	if s.waiting != nil {
		s.mu.Unlock()
		return nil, errFloorShared
	}
	if f.script {
		// Queue first, then wait: the release finds the record it pops.
		s.mu.Unlock()
		if err := f.queue(ctx, key); err != nil {
			return nil, err
		}
		s.mu.Lock()
		switch {
		case !s.held:
			s.held = true // freed meanwhile; the record stays for the next pop
			s.mu.Unlock()
			return unlock, nil
		case s.waiting != nil:
			s.mu.Unlock()
			return nil, errFloorShared
		}
	}
	s.waiting = f
	s.mu.Unlock()
	select {
	case <-f.msgs:
		return unlock, nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	granted := s.waiting != f
	if !granted {
		s.waiting = nil
	}
	s.mu.Unlock()
	if !granted {
		return nil, ctx.Err()
	}
	// The release chose this instance: its message is on the way.
	select {
	case <-f.msgs:
		return unlock, nil
	case <-time.After(10 * time.Second):
		return nil, errors.New("floor-publish: a hand-off message never came")
	}
}

// unlock hands the key to the waiting instance with one SPUBLISH, or frees
// it.
func (f *floorPublishInst) unlock(ctx context.Context, key string, s *floorSlot) error {
	s.mu.Lock()
	w := s.waiting
	s.waiting = nil
	if w == nil {
		s.held = false
	}
	s.mu.Unlock()
	if w == nil {
		return nil
	}
	if f.script {
		return floorHandoffLua.Run(ctx, f.client, handoffKeys(key), floorRetentionMs, floorLeaseMs, w.channel()).Err()
	}
	return f.client.SPublish(ctx, w.channel(), "1").Err()
}

func (f *floorPublishInst) Close() error {
	err := f.ps.Close()
	<-f.done
	return errors.Join(err, f.client.Close())
}
