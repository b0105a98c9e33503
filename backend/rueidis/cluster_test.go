package rueidisbackend_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"github.com/disgolock/disgo/internal/token"
	"github.com/disgolock/disgo/locker/driver"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	rueidisbackend "github.com/disgolock/disgo/backend/rueidis"
	"github.com/disgolock/disgo/internal/rediscore"
	"github.com/disgolock/disgo/internal/redistest"
	"github.com/disgolock/disgo/internal/tcpproxy"
)

// patience bounds every wait of these tests; reaching it is a failure.
const patience = 10 * time.Second

// TestCluster runs the conformance suite, the interoperability tests and
// the tests of what is special about Redis Cluster on one cluster of three
// masters, which its subtests share (they use names or prefixes of their
// own).
func TestCluster(t *testing.T) {
	c := &cluster{Cluster: redistest.StartCluster(t, 3), nodes: make(map[string]rueidis.Client)}
	for _, addr := range c.Addrs {
		n, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, ForceSingleClient: true})
		require.NoError(t, err)
		t.Cleanup(n.Close)
		c.nodes[addr] = n
	}
	// A cluster client given several nodes keeps dialling the others after
	// NewClient returned, and closes what its first topology refresh
	// replaced 5 s later, in a goroutine the conformance leak check would
	// report: give it one node, it finds the others.
	t.Run("Conformance", func(t *testing.T) {
		cc := connect(t, c.Addrs[0])
		defer cc.Close()
		require.Equal(t, rueidis.ClientModeCluster, cc.Mode())
		runConformance(t, connect(t, c.Addrs[0]), func(t testing.TB) harnessClient {
			// Every node through a proxy of the client's own, which stalls it.
			px := newProxied()
			t.Cleanup(px.close)
			cc := connectWith(t, rueidis.ClientOption{InitAddress: []string{c.Addrs[0]}, DialCtxFn: px.dial})
			return harnessClient{cc, px.stall}
		})
	})
	t.Run("Interop", func(t *testing.T) { testInterop(t, c.Addrs...) })
	t.Run("LocksSpreadAcrossMasters", c.testLocksSpread)
	t.Run("WakeUpsOnEveryMaster", func(t *testing.T) {
		t.Run("Sharded", func(t *testing.T) { c.testWakeUps(t, false) })
		t.Run("Classic", func(t *testing.T) { c.testWakeUps(t, true) })
	})
	t.Run("NamesOfOneSlot", c.testNamesOfOneSlot)
	t.Run("RefusedSubscription", c.testRefusedSubscription)
	t.Run("AwkwardNames", c.testAwkwardNames)
	t.Run("ExtendBatchAcrossMasters", c.testExtendBatch)
	t.Run("ConnectionLossResubscribes", c.testConnectionLoss)
	t.Run("SlotMigrationResubscribes", c.testSlotMigration) // last: it moves a slot
}

// proxied routes the connections of one client to the nodes of a cluster
// through TCP proxies of its own, one per node, made on first use, so that
// the client can be stalled: the keys, channels and scripts of one lock
// name are on one node, so that per-node order is the order that matters.
type proxied struct {
	mu      sync.Mutex
	byAddr  map[string]*tcpproxy.Proxy
	stalled bool
	closed  bool
}

func newProxied() *proxied { return &proxied{byAddr: make(map[string]*tcpproxy.Proxy)} }

// dial is a rueidis DialCtxFn: it connects to the proxy of the node at dst.
func (p *proxied) dial(ctx context.Context, dst string, d *net.Dialer, _ *tls.Config) (net.Conn, error) {
	p.mu.Lock()
	px := p.byAddr[dst]
	if px == nil && !p.closed {
		var err error
		if px, err = tcpproxy.New(dst); err != nil {
			p.mu.Unlock()
			return nil, err
		}
		if p.stalled {
			px.Pause()
		}
		p.byAddr[dst] = px
	}
	closed := p.closed
	p.mu.Unlock()
	if closed {
		// After the test: a closed rueidis cluster client may still
		// refresh its topology, and would retry for ever if dials failed.
		return d.DialContext(ctx, "tcp", dst)
	}
	return d.DialContext(ctx, "tcp", px.Addr())
}

// stall pauses every proxy (and those made meanwhile) until resume.
func (p *proxied) stall() (resume func()) {
	p.mu.Lock()
	p.stalled = true
	for _, px := range p.byAddr {
		px.Pause()
	}
	p.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			p.mu.Lock()
			p.stalled = false
			var all []*tcpproxy.Proxy
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

// close closes every proxy; later dials go to the nodes themselves.
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
	nodes map[string]rueidis.Client // a client of each master alone, by address
}

// client returns a cluster client whose connections carry name (see
// CLIENT LIST), closed when the test ends.
func (c *cluster) client(t *testing.T, name string) rueidis.Client {
	cc, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: c.Addrs, ClientName: name})
	require.NoError(t, err)
	t.Cleanup(cc.Close)
	return cc
}

// store returns a Store on a new cluster client whose connections carry
// name, both closed when the test ends.
func (c *cluster) store(t *testing.T, name string, opts rueidisbackend.Options) *rueidisbackend.Store {
	s, err := rueidisbackend.New(c.client(t, name), opts)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, s.Close()) })
	return s
}

// node runs cmd on the master at addr alone.
func (c *cluster) node(ctx context.Context, addr string, cmd ...string) rueidis.RedisResult {
	n := c.nodes[addr]
	return n.Do(ctx, n.B().Arbitrary(cmd...).Build())
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
	slot, err := c.node(ctx, c.Addrs[0], "CLUSTER", "KEYSLOT", key).AsInt64()
	require.NoError(t, err)
	ranges, err := c.node(ctx, c.Addrs[0], "CLUSTER", "SLOTS").ToArray()
	require.NoError(t, err)
	for _, r := range ranges {
		f, err := r.ToArray()
		require.NoError(t, err)
		first, _ := f[0].AsInt64()
		last, _ := f[1].AsInt64()
		master, _ := f[2].ToArray()
		host, _ := master[0].ToString()
		port, _ := master[1].AsInt64()
		if first <= slot && slot <= last {
			return fmt.Sprintf("%s:%d", host, port)
		}
	}
	t.Fatalf("no master serves slot %d", slot)
	return ""
}

// namesPerMaster returns n lock names starting with base whose slots each
// master serves, by master address.
func (c *cluster) namesPerMaster(t *testing.T, base string, n int) map[string][]string {
	t.Helper()
	layout := rediscore.Layout{Prefix: rediscore.DefaultPrefix} // the prefix does not take part in the slot
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

// shardSubscribers returns how many clients of the master at addr are
// subscribed to the shard channel ch, or -1 when it does not answer. It
// may run off the test goroutine (in require.Eventually).
func (c *cluster) shardSubscribers(addr, ch string) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	counts, err := c.node(ctx, addr, "PUBSUB", "SHARDNUMSUB", ch).AsIntMap()
	if err != nil {
		return -1
	}
	return counts[ch]
}

// pubsubClients returns the ids of the pub/sub connections named name on
// the master at addr.
func (c *cluster) pubsubClients(t *testing.T, addr, name string) []string {
	t.Helper()
	list, err := c.node(ctxFor(t), addr, "CLIENT", "LIST").ToString()
	require.NoError(t, err)
	var ids []string
	for _, line := range strings.Split(strings.TrimPrefix(list, "txt:"), "\n") { // RESP3 verbatim text
		f := strings.Fields(line)
		if len(f) > 0 && strings.Contains(line, " name="+name+" ") && strings.Contains(line, " flags=P") {
			ids = append(ids, strings.TrimPrefix(f[0], "id="))
		}
	}
	return ids
}

func (c *cluster) testLocksSpread(t *testing.T) {
	ctx := ctxFor(t)
	s := c.store(t, "", rueidisbackend.Options{Prefix: "spread"})
	const locks = 60
	for i := range locks {
		res, err := s.Acquire(ctx, req(fmt.Sprint("lock-", i), "alice"))
		require.NoError(t, err)
		require.True(t, res.Acquired)
	}
	total := 0
	for _, addr := range c.Addrs {
		keys, err := c.node(ctx, addr, "KEYS", "spread:*:lock").AsStrSlice()
		require.NoError(t, err)
		assert.NotEmpty(t, keys, "master %s holds no lock", addr)
		for _, k := range keys {
			fence := strings.TrimSuffix(k, "lock") + "fence"
			n, err := c.node(ctx, addr, "EXISTS", fence).AsInt64()
			require.NoError(t, err)
			assert.Equal(t, int64(1), n, "the fence of %s is on another master", k)
		}
		total += len(keys)
	}
	assert.Equal(t, locks, total)
}

func (c *cluster) testWakeUps(t *testing.T, classic bool) {
	ctx := ctxFor(t)
	client := fmt.Sprint("wake-", classic)
	opts := rueidisbackend.Options{ClassicPubSub: classic}
	holder := c.store(t, "", opts)
	waiter := c.store(t, client, opts)
	layout := rediscore.Layout{Prefix: rediscore.DefaultPrefix}

	// Two names per master: a connection serves channels of several slots.
	byMaster := c.namesPerMaster(t, client, 2)
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
		n := len(c.pubsubClients(t, addr, client))
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

// testNamesOfOneSlot: names whose channels share a slot are subscribed in
// one SSUBSCRIBE when the hub batches them, and woken each.
func (c *cluster) testNamesOfOneSlot(t *testing.T) {
	ctx := ctxFor(t)
	holder := c.store(t, "", rueidisbackend.Options{})
	waiter := c.store(t, "", rueidisbackend.Options{})
	layout := rediscore.Layout{Prefix: rediscore.DefaultPrefix}
	b := c.client(t, "").B()
	var names []string // two of one slot
	seen := make(map[uint16]string)
	for i := 0; names == nil; i++ {
		name := fmt.Sprint("slot-", i)
		cmd := b.Ssubscribe().Channel(layout.Channel(name)).Build()
		if other, ok := seen[cmd.Slot()]; ok {
			names = []string{other, name}
		}
		seen[cmd.Slot()] = name
	}
	master := c.masterOf(t, layout.Channel(names[0]))
	first := "" // a name of another slot of that master
	for i := 0; first == ""; i++ {
		if name := fmt.Sprint("other-", i); c.masterOf(t, layout.Channel(name)) == master {
			first = name
		}
	}

	type subscribed struct {
		name string
		sub  driver.Subscription
		err  error
	}
	results := make(chan subscribed, 3)
	subscribe := func(n string) {
		go func() {
			sub, err := waiter.Subscribe(ctx, n, "t")
			results <- subscribed{n, sub, err}
		}()
	}
	for _, n := range names {
		res, err := holder.Acquire(ctx, req(n, "alice"))
		require.NoError(t, err)
		require.True(t, res.Acquired)
	}
	// While the master is paused, the hub waits for the subscription of
	// first, and queues the two others, which it then writes together.
	require.NoError(t, c.node(ctx, master, "CLIENT", "PAUSE", "500", "ALL").Error())
	subscribe(first)
	for _, n := range names {
		subscribe(n)
	}
	require.Eventually(t, func() bool { return waiter.ActiveSubscriptions() == 3 },
		patience, time.Millisecond, "the subscriptions to be queued")
	subs := make(map[string]driver.Subscription)
	for range 3 {
		r := <-results
		require.NoError(t, r.err, "subscribe %s", r.name)
		defer r.sub.Close()
		subs[r.name] = r.sub
	}
	for _, n := range names {
		assert.Equal(t, int64(1), c.shardSubscribers(master, layout.Channel(n)), "subscription of %s", n)
		waitedFor(t, holder, n)
		held, _, err := holder.Release(ctx, n, "alice", "")
		require.NoError(t, err)
		require.True(t, held)
		woken(t, subs[n], "the wake-up of "+n)
	}
}

// testRefusedSubscription: a master's refusal fails Subscribe, and does
// not stop subscriptions once it ends.
func (c *cluster) testRefusedSubscription(t *testing.T) {
	ctx := ctxFor(t)
	waiter := c.store(t, "", rueidisbackend.Options{})
	const name = "refused"
	master := c.masterOf(t, rediscore.Layout{Prefix: rediscore.DefaultPrefix}.Channel(name))
	acl := func(rule string) {
		t.Helper()
		require.NoError(t, c.node(ctx, master, "ACL", "SETUSER", "default", rule).Error())
	}
	acl("-ssubscribe") // as a master that does not know SSUBSCRIBE (Redis before 7)
	_, err := waiter.Subscribe(ctx, name, "t")
	acl("+ssubscribe")
	require.Error(t, err)
	require.Eventually(t, func() bool { return waiter.ActiveSubscriptions() == 0 },
		patience, 5*time.Millisecond, "the refused subscription was kept")

	sub, err := waiter.Subscribe(ctx, name, "t")
	require.NoError(t, err)
	defer sub.Close()
	held := c.store(t, "", rueidisbackend.Options{})
	res, err := held.Acquire(ctx, req(name, "alice"))
	require.NoError(t, err)
	require.True(t, res.Acquired)
	waitedFor(t, held, name)
	_, _, err = held.Release(ctx, name, "alice", "")
	require.NoError(t, err)
	woken(t, sub, "a release after the refusal ended")
}

// awkwardNames contain hash tag braces, the escape character, key
// separators and non-ASCII characters.
var awkwardNames = []string{
	"{", "}", "{}", "}{", "{a}", "a{b}c", "{{x}}", "%", "%7B", "%7D}", "%25",
	"a:b", ":{x}:", "ключ", "锁{名}", "ü:{%}", "😀", "{😀}:x",
}

// testAwkwardNames runs every script, and a wake-up, on awkward names: none
// may fail with CROSSSLOT or a non-local key error.
func (c *cluster) testAwkwardNames(t *testing.T) {
	ctx := ctxFor(t)
	cc := c.client(t, "")
	a, err := rueidisbackend.New(cc, rueidisbackend.Options{Prefix: "awk"})
	require.NoError(t, err)
	defer a.Close()
	b := c.store(t, "", rueidisbackend.Options{Prefix: "awk"})
	var batch []driver.Extension
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
		batch = append(batch, driver.Extension{Name: name, Owner: "alice", Lease: time.Minute})

		sub, err := b.Subscribe(ctx, name, bob.Ticket)
		require.NoError(t, err, name)
		require.NoError(t, b.Leave(ctx, name, bob.Ticket), name)
		held, _, err = a.Release(ctx, name, "alice", "")
		require.NoError(t, err, name)
		assert.True(t, held, name)
		woken(t, sub, "the wake-up of "+name)
		sub.Close()
	}
	require.NoError(t, a.ExtendBatch(ctx, batch))
	for _, e := range batch {
		assert.NoError(t, e.Err, e.Name)
		assert.False(t, e.Held, "%s was released", e.Name)
	}
	keys, err := scanKeys(ctx, cc)
	require.NoError(t, err)
	var fences int
	for _, k := range keys {
		if strings.HasPrefix(k, "awk:") {
			assert.True(t, strings.HasSuffix(k, ":fence"), "key %q left behind", k)
			fences++
		}
	}
	assert.Equal(t, len(awkwardNames), fences, "one fence per name")
}

func (c *cluster) testExtendBatch(t *testing.T) {
	ctx := ctxFor(t)
	s := c.store(t, "", rueidisbackend.Options{Prefix: "batch"})
	var batch []driver.Extension
	for _, names := range c.namesPerMaster(t, "batch", 3) {
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
	holder := c.store(t, "", rueidisbackend.Options{})
	waiter := c.store(t, client, rueidisbackend.Options{})
	layout := rediscore.Layout{Prefix: rediscore.DefaultPrefix}
	// Two slots per connection: resubscribing them in one command would
	// be rejected.
	byMaster := c.namesPerMaster(t, client, 2)
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
		require.NoError(t, c.node(ctx, addr, "CLIENT", "KILL", "ID", ids[0]).Error())
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
	ch := rediscore.Layout{Prefix: rediscore.DefaultPrefix}.Channel(name)
	holder := c.store(t, "", rueidisbackend.Options{})
	waiter := c.store(t, "", rueidisbackend.Options{})
	sub, err := waiter.Subscribe(ctx, name, "t")
	require.NoError(t, err)
	defer sub.Close()

	src := c.masterOf(t, ch)
	dst := c.Addrs[0]
	if dst == src {
		dst = c.Addrs[1]
	}
	require.Equal(t, int64(1), c.shardSubscribers(src, ch))
	slot, err := c.node(ctx, src, "CLUSTER", "KEYSLOT", ch).ToInt64()
	require.NoError(t, err)
	dstID, err := c.node(ctx, dst, "CLUSTER", "MYID").ToString()
	require.NoError(t, err)
	srcID, err := c.node(ctx, src, "CLUSTER", "MYID").ToString()
	require.NoError(t, err)
	// The slot holds no key (the lock is free), so moving it is three
	// steps: import, migrate, assign it to dst everywhere.
	s := fmt.Sprint(slot)
	require.NoError(t, c.node(ctx, dst, "CLUSTER", "SETSLOT", s, "IMPORTING", srcID).Error())
	require.NoError(t, c.node(ctx, src, "CLUSTER", "SETSLOT", s, "MIGRATING", dstID).Error())
	for _, addr := range append([]string{dst, src}, c.Addrs...) {
		require.NoError(t, c.node(ctx, addr, "CLUSTER", "SETSLOT", s, "NODE", dstID).Error())
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
