package goredis_test

import (
	"context"
	"errors"
	"fmt"
	"github.com/disgolock/disgo/internal/token"
	"github.com/disgolock/disgo/locker/driver"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/backend/goredis"
	"github.com/disgolock/disgo/internal/rediscore"
	"github.com/disgolock/disgo/internal/redistest"
	"github.com/disgolock/disgo/internal/tcpproxy"
)

// patience bounds every wait of these tests; reaching it is a failure.
const patience = 10 * time.Second

// TestCluster runs the conformance suite and the tests of what is special
// about Redis Cluster on one cluster of three masters, which its subtests
// share (they use names or prefixes of their own).
func TestCluster(t *testing.T) {
	c := &cluster{Cluster: redistest.StartCluster(t, 3), nodes: make(map[string]*redis.Client)}
	for _, addr := range c.Addrs {
		n := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true, DialTimeout: time.Second})
		t.Cleanup(func() { _ = n.Close() })
		c.nodes[addr] = n
	}
	t.Run("Conformance", func(t *testing.T) {
		runConformance(t, c.client(t, ""), func(t testing.TB) harnessClient {
			// Every node through a proxy of the client's own, which stalls it.
			px := newProxied()
			t.Cleanup(px.close)
			cc := redis.NewClusterClient(&redis.ClusterOptions{
				Addrs: c.Addrs, ContextTimeoutEnabled: true, DialTimeout: time.Second,
				ReadTimeout: stalledReadTimeout, WriteTimeout: stalledReadTimeout, Dialer: px.dial,
			})
			return harnessClient{cc, px.stall, px.close}
		})
	})
	t.Run("LocksSpreadAcrossMasters", c.testLocksSpread)
	t.Run("WakeUpsOnEveryMaster", func(t *testing.T) {
		t.Run("Sharded", func(t *testing.T) { c.testWakeUps(t, false) })
		t.Run("Classic", func(t *testing.T) { c.testWakeUps(t, true) })
	})
	t.Run("AwkwardNames", c.testAwkwardNames)
	t.Run("ExtendBatchAcrossMasters", c.testExtendBatch)
	t.Run("ConnectionLossResubscribes", c.testConnectionLoss)
	t.Run("SlotMigrationResubscribes", c.testSlotMigration) // last: it moves a slot
}

// proxied routes the connections of one client to the nodes of a cluster
// through TCP proxies of its own, one per node, made on first use, so that
// the client can be stalled: its keys, channels and scripts of one lock
// name are on one node, so that per-node order is the order that matters.
type proxied struct {
	mu      sync.Mutex
	byAddr  map[string]*tcpproxy.Proxy
	stalled bool
	closed  bool
}

func newProxied() *proxied { return &proxied{byAddr: make(map[string]*tcpproxy.Proxy)} }

// dial is a go-redis Dialer: it connects to the proxy of the node at addr.
func (p *proxied) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	p.mu.Lock()
	px := p.byAddr[addr]
	if px == nil && !p.closed {
		var err error
		if px, err = tcpproxy.New(addr); err != nil {
			p.mu.Unlock()
			return nil, err
		}
		if p.stalled {
			px.Pause()
		}
		p.byAddr[addr] = px
	}
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return nil, errors.New("proxied: closed")
	}
	var d net.Dialer
	return d.DialContext(ctx, network, px.Addr())
}

// stall pauses every proxy (and those made meanwhile) until resume.
func (p *proxied) stall() (resume func()) {
	p.mu.Lock()
	p.stalled = true
	var all []*tcpproxy.Proxy
	for _, px := range p.byAddr {
		px.Pause()
		all = append(all, px)
	}
	p.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			p.mu.Lock()
			p.stalled = false
			all = all[:0]
			for _, px := range p.byAddr {
				all = append(all, px)
			}
			p.mu.Unlock()
			for _, px := range all {
				px.ResumeWithGap(2 * time.Millisecond)
			}
		})
	}
}

// close closes every proxy, and fails every later dial: the client is cut
// off from the cluster.
func (p *proxied) close() {
	p.mu.Lock()
	p.closed = true
	all := p.byAddr
	p.byAddr = nil
	p.mu.Unlock()
	for _, px := range all {
		_ = px.Close()
	}
}

type cluster struct {
	*redistest.Cluster
	nodes map[string]*redis.Client // by address
}

// node returns the client of the node at addr.
func (c *cluster) node(addr string) *redis.Client { return c.nodes[addr] }

// newClient returns a cluster client whose connections carry name (see
// CLIENT LIST), for the caller to close.
func (c *cluster) newClient(name string) *redis.ClusterClient {
	return redis.NewClusterClient(&redis.ClusterOptions{
		Addrs: c.Addrs, ClientName: name, ContextTimeoutEnabled: true, DialTimeout: time.Second,
	})
}

// client returns a cluster client closed when the test ends.
func (c *cluster) client(t *testing.T, name string) *redis.ClusterClient {
	cc := c.newClient(name)
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// store returns a Store on cc, closed when the test ends.
func store(t *testing.T, cc redis.UniversalClient, opts goredis.Options) *goredis.Store {
	s, err := goredis.New(cc, opts)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, s.Close()) })
	return s
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	t.Cleanup(cancel)
	return ctx
}

func req(name, owner string) driver.AcquireRequest {
	return driver.AcquireRequest{Name: name, Owner: owner, Ticket: token.New(), Lease: time.Minute}
}

// waitedFor makes an attempt on name by another owner that finds the lock
// taken, as every waiter makes before it sleeps: only the release of a
// holding someone waited for wakes the name's waiters.
func waitedFor(t *testing.T, s driver.Backend, name string) {
	t.Helper()
	res, err := s.Acquire(ctxFor(t), req(name, "someone-waiting"))
	require.NoError(t, err)
	require.False(t, res.Acquired, "%q is not held", name)
}

// woken waits for a wake-up of sub.
func woken(t *testing.T, sub driver.Subscription, what string) {
	t.Helper()
	select {
	case <-sub.Wake():
	case <-time.After(patience):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// masterOf returns the address of the master that serves key's slot, as
// the masters themselves say.
func (c *cluster) masterOf(t *testing.T, key string) string {
	t.Helper()
	ctx := ctxFor(t)
	n := c.node(c.Addrs[0])
	slot, err := n.ClusterKeySlot(ctx, key).Result()
	require.NoError(t, err)
	//lint:ignore SA1019 CLUSTER SLOTS is what the stores route by, and Redis 7.0 still has it
	slots, err := n.ClusterSlots(ctx).Result()
	require.NoError(t, err)
	for _, r := range slots {
		if int64(r.Start) <= slot && slot <= int64(r.End) {
			return r.Nodes[0].Addr
		}
	}
	t.Fatalf("no master serves slot %d", slot)
	return ""
}

// namesPerMaster returns n lock names under prefix whose slots each master
// serves, by master address.
func (c *cluster) namesPerMaster(t *testing.T, prefix, base string, n int) map[string][]string {
	t.Helper()
	layout := rediscore.Layout{Prefix: prefix}
	byMaster := make(map[string][]string)
	for i := 0; ; i++ {
		name := fmt.Sprint(base, i)
		addr := c.masterOf(t, layout.Channel(name))
		if len(byMaster[addr]) < n {
			byMaster[addr] = append(byMaster[addr], name)
		}
		full := len(byMaster) == len(c.Addrs)
		for _, names := range byMaster {
			full = full && len(names) == n
		}
		if full {
			return byMaster
		}
	}
}

// shardSubscribers returns how many clients of the node at addr are
// subscribed to the shard channel ch, or -1 when the node does not answer.
// It may run off the test goroutine (in require.Eventually).
func (c *cluster) shardSubscribers(addr, ch string) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	counts, err := c.node(addr).PubSubShardNumSub(ctx, ch).Result()
	if err != nil {
		return -1
	}
	return counts[ch]
}

// pubsubClients returns the ids of the pub/sub connections named name on
// the node at addr.
func (c *cluster) pubsubClients(t *testing.T, addr, name string) []string {
	t.Helper()
	list, err := c.node(addr).ClientList(ctxFor(t)).Result()
	require.NoError(t, err)
	var ids []string
	for _, line := range strings.Split(list, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && strings.Contains(line, " name="+name+" ") && strings.Contains(line, " flags=P ") {
			ids = append(ids, strings.TrimPrefix(f[0], "id="))
		}
	}
	return ids
}

func (c *cluster) testLocksSpread(t *testing.T) {
	ctx := ctxFor(t)
	s := store(t, c.client(t, ""), goredis.Options{Prefix: "spread"})
	const locks = 100
	for i := range locks {
		res, err := s.Acquire(ctx, req(fmt.Sprint("lock-", i), "alice"))
		require.NoError(t, err)
		require.True(t, res.Acquired)
	}
	total := 0
	for _, addr := range c.Addrs {
		n := c.node(addr)
		keys, err := n.Keys(ctx, "spread:*:lock").Result()
		require.NoError(t, err)
		assert.NotEmpty(t, keys, "master %s holds no lock", addr)
		for _, k := range keys {
			fence := strings.TrimSuffix(k, "lock") + "fence"
			assert.Equal(t, int64(1), n.Exists(ctx, fence).Val(), "the fence of %s is on another node", k)
		}
		total += len(keys)
	}
	assert.Equal(t, locks, total)
}

func (c *cluster) testWakeUps(t *testing.T, classic bool) {
	ctx := ctxFor(t)
	name := fmt.Sprint("wake-", classic)
	prefix := "wake"
	holder := store(t, c.client(t, ""), goredis.Options{Prefix: prefix, ClassicPubSub: classic})
	waiter := store(t, c.client(t, name), goredis.Options{Prefix: prefix, ClassicPubSub: classic})
	layout := rediscore.Layout{Prefix: prefix}

	// Two names per master: a connection serves channels of several slots.
	byMaster := c.namesPerMaster(t, prefix, name, 2)
	type subscribed struct {
		name string
		sub  driver.Subscription
		err  error
	}
	results := make(chan subscribed, 64) // never blocks a sender
	count := 0
	for _, names := range byMaster {
		for _, n := range names {
			res, err := holder.Acquire(ctx, req(n, "alice"))
			require.NoError(t, err)
			require.True(t, res.Acquired)
			count++
			go func() { // all at once, so that the hub batches them
				sub, err := waiter.Subscribe(ctx, n, "t-"+n)
				results <- subscribed{n, sub, err}
			}()
		}
	}
	subs := make(map[string]driver.Subscription)
	for range count {
		r := <-results
		require.NoError(t, r.err, "subscribe %s", r.name)
		subs[r.name] = r.sub
	}
	assert.Equal(t, count, waiter.ActiveSubscriptions())

	conns := 0
	for addr, names := range byMaster {
		n := len(c.pubsubClients(t, addr, name))
		conns += n
		if !classic {
			assert.Equal(t, 1, n, "pub/sub connections to master %s", addr)
			for _, n := range names {
				assert.Equal(t, int64(1), c.shardSubscribers(addr, layout.Channel(n)), "subscription of %s on its master", n)
			}
		}
	}
	assert.Equal(t, map[bool]int{false: len(c.Addrs), true: 1}[classic], conns, "pub/sub connections in all")

	for n, sub := range subs {
		waitedFor(t, holder, n)
		held, _, err := holder.Release(ctx, n, "alice", "")
		require.NoError(t, err)
		require.True(t, held)
		woken(t, sub, "the wake-up of "+n)
		sub.Close()
	}
	require.Eventually(t, func() bool { return waiter.ActiveSubscriptions() == 0 },
		patience, 10*time.Millisecond, "subscriptions left after every waiter left")
	if !classic {
		require.Eventually(t, func() bool {
			for addr, names := range byMaster {
				for _, n := range names {
					if c.shardSubscribers(addr, layout.Channel(n)) != 0 {
						return false
					}
				}
			}
			return true
		}, patience, 10*time.Millisecond, "the masters still have subscriptions")
	}
}

// awkwardNames contain hash tag braces, the escape character, key
// separators and non-ASCII characters.
var awkwardNames = []string{
	"{", "}", "{}", "}{", "{a}", "a{b}c", "{{x}}", "%", "%7B", "%7D}", "%25",
	"a:b", ":{x}:", "ключ", "锁{名}", "ü:{%}", "😀", "{😀}:x",
}

func (c *cluster) testAwkwardNames(t *testing.T) {
	ctx := ctxFor(t)
	cc := c.client(t, "")
	a := store(t, cc, goredis.Options{Prefix: "awk"})
	b := store(t, c.client(t, ""), goredis.Options{Prefix: "awk"})
	for _, name := range awkwardNames {
		res, err := a.Acquire(ctx, req(name, "alice"))
		require.NoError(t, err, name)
		require.True(t, res.Acquired, name)
		bob := req(name, "bob")
		res, err = b.AcquireFair(ctx, bob, time.Minute)
		require.NoError(t, err, name)
		require.False(t, res.Acquired, name)
		st, err := a.Inspect(ctx, name)
		require.NoError(t, err, name)
		assert.Equal(t, "alice", st.Owner, name)
		assert.Equal(t, 1, st.Waiters, name)
		held, err := a.Extend(ctx, name, "alice", time.Minute)
		require.NoError(t, err, name)
		assert.True(t, held, name)

		sub, err := b.Subscribe(ctx, name, bob.Ticket)
		require.NoError(t, err, name)
		held, _, err = a.Release(ctx, name, "alice", "")
		require.NoError(t, err, name)
		assert.True(t, held, name)
		woken(t, sub, "the wake-up of "+name)
		sub.Close()
		require.NoError(t, b.Leave(ctx, name, bob.Ticket), name)
		_, _, err = b.Release(ctx, name, "bob", bob.Ticket) // whatever the queue handed over
		require.NoError(t, err, name)
	}
	keys, err := scanKeys(ctx, cc, "awk:*")
	require.NoError(t, err)
	for _, k := range keys {
		assert.True(t, strings.HasSuffix(k, ":fence"), "key %q left behind", k)
	}
	assert.Len(t, keys, len(awkwardNames), "one fence per name")
}

func (c *cluster) testExtendBatch(t *testing.T) {
	ctx := ctxFor(t)
	s := store(t, c.client(t, ""), goredis.Options{Prefix: "batch"})
	var batch []driver.Extension
	for _, names := range c.namesPerMaster(t, "batch", "b", 3) {
		for _, n := range names {
			r := req(n, "alice")
			r.Lease = 10 * time.Second
			res, err := s.Acquire(ctx, r)
			require.NoError(t, err)
			require.True(t, res.Acquired)
			batch = append(batch, driver.Extension{Name: n, Owner: "alice", Lease: time.Hour})
		}
	}
	batch = append(batch, driver.Extension{Name: "not-held", Owner: "alice", Lease: time.Hour})

	require.NoError(t, s.ExtendBatch(ctx, batch))
	for _, e := range batch {
		require.NoError(t, e.Err, e.Name)
		assert.Equal(t, e.Name != "not-held", e.Held, e.Name)
		if e.Held {
			st, err := s.Inspect(ctx, e.Name)
			require.NoError(t, err)
			assert.Greater(t, st.TTL, time.Minute, "lease of %s not extended", e.Name)
		}
	}
}

func (c *cluster) testConnectionLoss(t *testing.T) {
	ctx := ctxFor(t)
	const client = "loss"
	holder := store(t, c.client(t, ""), goredis.Options{Prefix: "loss"})
	waiter := store(t, c.client(t, client), goredis.Options{Prefix: "loss"})
	layout := rediscore.Layout{Prefix: "loss"}
	// Two slots per connection: go-redis would resubscribe them in one
	// command, which the cluster rejects.
	byMaster := c.namesPerMaster(t, "loss", "l", 2)
	subs := make(map[string]driver.Subscription)
	for _, names := range byMaster {
		for _, n := range names {
			sub, err := waiter.Subscribe(ctx, n, "t")
			require.NoError(t, err)
			defer sub.Close()
			subs[n] = sub
		}
	}
	for addr := range byMaster {
		ids := c.pubsubClients(t, addr, client)
		require.Len(t, ids, 1, "pub/sub connections to %s", addr)
		require.NoError(t, c.node(addr).Do(ctx, "CLIENT", "KILL", "ID", ids[0]).Err())
	}
	for n, sub := range subs {
		woken(t, sub, "the wake-up of "+n+" after its connection was lost")
	}
	for addr, names := range byMaster {
		for _, n := range names {
			require.Eventually(t, func() bool { return c.shardSubscribers(addr, layout.Channel(n)) == 1 },
				patience, 10*time.Millisecond, "resubscription of %s", n)
		}
	}
	for n, sub := range subs {
		_, err := holder.Acquire(ctx, req(n, "alice"))
		require.NoError(t, err)
		waitedFor(t, holder, n)
		_, _, err = holder.Release(ctx, n, "alice", "")
		require.NoError(t, err)
		woken(t, sub, "a wake-up of "+n+" after the resubscription")
	}
	assert.Equal(t, len(subs), waiter.ActiveSubscriptions())
}

func (c *cluster) testSlotMigration(t *testing.T) {
	ctx := ctxFor(t)
	const name = "moving"
	layout := rediscore.Layout{Prefix: "move"}
	ch := layout.Channel(name)
	holder := store(t, c.client(t, ""), goredis.Options{Prefix: "move"})
	waiter := store(t, c.client(t, ""), goredis.Options{Prefix: "move"})
	sub, err := waiter.Subscribe(ctx, name, "t")
	require.NoError(t, err)
	defer sub.Close()

	src := c.masterOf(t, ch)
	dst := c.Addrs[0]
	if dst == src {
		dst = c.Addrs[1]
	}
	require.Equal(t, int64(1), c.shardSubscribers(src, ch))
	slot := c.node(src).ClusterKeySlot(ctx, ch).Val()
	dstID := c.node(dst).Do(ctx, "CLUSTER", "MYID").Val()
	srcID := c.node(src).Do(ctx, "CLUSTER", "MYID").Val()
	// The slot holds no key (the lock is free), so moving it is three
	// steps: import, migrate, assign it to dst everywhere.
	require.NoError(t, c.node(dst).Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", srcID).Err())
	require.NoError(t, c.node(src).Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", dstID).Err())
	for _, addr := range append([]string{dst, src}, c.Addrs...) {
		require.NoError(t, c.node(addr).Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", dstID).Err())
	}
	require.Equal(t, dst, c.masterOf(t, ch))

	woken(t, sub, "the wake-up when the slot moved")
	require.Eventually(t, func() bool { return c.shardSubscribers(dst, ch) == 1 },
		patience, 10*time.Millisecond, "the subscription on the new master")
	assert.Equal(t, int64(0), c.shardSubscribers(src, ch))

	res, err := holder.Acquire(ctx, req(name, "alice"))
	require.NoError(t, err)
	require.True(t, res.Acquired)
	waitedFor(t, holder, name)
	_, _, err = holder.Release(ctx, name, "alice", "")
	require.NoError(t, err)
	woken(t, sub, "a release on the new master")
}
