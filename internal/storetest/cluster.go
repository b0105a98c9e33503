package storetest

// This file is the cluster part of the suite: what is special about Redis
// Cluster, once for both adapters.

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/internal/rediscore"
	"github.com/disgolock/disgo/internal/redistest"
	"github.com/disgolock/disgo/internal/token"
	"github.com/disgolock/disgo/locker/driver"
)

// ClusterHarness is what [RunCluster] needs from a Redis adapter.
type ClusterHarness struct {
	// Open returns a store with opts on a new cluster client of c whose
	// connections carry the client name name (see CLIENT LIST; "" for
	// none). The store and the client are closed when the test ends.
	Open func(t *testing.T, c *redistest.Cluster, name string, opts Options) RedisStore
	// Node returns a Do on a client of the master at addr alone, closed
	// when the test ends. It may be called off the test goroutine.
	Node func(t *testing.T, addr string) Do
	// RefusalFailsSubscribe says that Subscribe fails when a master
	// refuses SSUBSCRIBE. Otherwise the adapter counts a refused
	// subscription as confirmed and lost at once: Subscribe returns, the
	// subscription is woken, and the store subscribes again.
	RefusalFailsSubscribe bool
}

// RunCluster runs the cluster tests as subtests of t, one after another,
// on the cluster c of three masters or more, which they share: each uses
// names or a prefix of its own. The last one moves a slot.
func RunCluster(t *testing.T, c *redistest.Cluster, h ClusterHarness) {
	if h.Open == nil || h.Node == nil {
		t.Fatal("storetest: ClusterHarness.Open and ClusterHarness.Node are required")
	}
	if len(c.Addrs) < 3 {
		t.Fatalf("storetest: RunCluster needs 3 masters or more, got %d", len(c.Addrs))
	}
	cl := &cluster{Cluster: c, h: h, nodes: make(map[string]Do)}
	for _, addr := range c.Addrs {
		cl.nodes[addr] = h.Node(t, addr)
	}
	t.Run("LocksSpreadAcrossMasters", cl.testLocksSpread)
	t.Run("WakeUpsOnEveryMaster", func(t *testing.T) {
		t.Run("Sharded", func(t *testing.T) { cl.testWakeUps(t, false) })
		t.Run("Classic", func(t *testing.T) { cl.testWakeUps(t, true) })
	})
	t.Run("NamesOfOneSlot", cl.testNamesOfOneSlot)
	t.Run("AcquireAllOneSlot", cl.testAcquireAllOneSlot)
	t.Run("RefusedSubscription", cl.testRefusedSubscription)
	t.Run("AwkwardNames", cl.testAwkwardNames)
	t.Run("ExtendBatchAcrossMasters", cl.testExtendBatch)
	t.Run("ConnectionLossResubscribes", cl.testConnectionLoss)
	t.Run("SlotMigrationResubscribes", cl.testSlotMigration) // last: it moves a slot
}

type cluster struct {
	*redistest.Cluster
	h     ClusterHarness
	nodes map[string]Do // a client of each master alone, by address
}

// store returns a store with opts on a new cluster client whose
// connections carry name.
func (c *cluster) store(t *testing.T, name string, opts Options) RedisStore {
	t.Helper()
	return c.h.Open(t, c.Cluster, name, opts)
}

// node runs a command on the master at addr alone.
func (c *cluster) node(ctx context.Context, addr string, args ...string) (any, error) {
	return c.nodes[addr](ctx, args...)
}

// must runs a command on the master at addr and fails the test on an error.
func (c *cluster) must(t *testing.T, addr string, args ...string) any {
	t.Helper()
	v, err := c.node(ctxT(t), addr, args...)
	require.NoError(t, err, "%s: %q", addr, args)
	return v
}

// slotOf returns the slot of key.
func (c *cluster) slotOf(t *testing.T, key string) int64 {
	t.Helper()
	slot, ok := c.must(t, c.Addrs[0], "CLUSTER", "KEYSLOT", key).(int64)
	require.True(t, ok, "CLUSTER KEYSLOT %q", key)
	return slot
}

// masterOf returns the address of the master that serves key's slot, as
// the masters themselves say.
func (c *cluster) masterOf(t *testing.T, key string) string {
	t.Helper()
	slot := c.slotOf(t, key)
	ranges, ok := c.must(t, c.Addrs[0], "CLUSTER", "SLOTS").([]any)
	require.True(t, ok, "CLUSTER SLOTS")
	for _, r := range ranges {
		f, _ := r.([]any)
		require.GreaterOrEqual(t, len(f), 3, "CLUSTER SLOTS entry %v", r)
		first, _ := f[0].(int64)
		last, _ := f[1].(int64)
		master, _ := f[2].([]any)
		require.GreaterOrEqual(t, len(master), 2, "CLUSTER SLOTS master %v", f[2])
		host, _ := master[0].(string)
		port, _ := master[1].(int64)
		if first <= slot && slot <= last {
			return fmt.Sprintf("%s:%d", host, port)
		}
	}
	t.Fatalf("no master serves slot %d", slot)
	return ""
}

// namesPerMaster returns n lock names starting with base whose slots each
// master serves, by master address (the prefix takes no part in the slot).
func (c *cluster) namesPerMaster(t *testing.T, base string, n int) map[string][]string {
	t.Helper()
	layout := rediscore.Layout{Prefix: rediscore.DefaultPrefix}
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
	v, err := c.node(ctx, addr, "PUBSUB", "SHARDNUMSUB", ch)
	if err != nil {
		return -1
	}
	n, ok := subscribersIn(v, ch)
	if !ok {
		return -1
	}
	return n
}

// subscribersIn reads the count of ch from a PUBSUB NUMSUB or SHARDNUMSUB
// reply, a flat array or a map.
func subscribersIn(v any, ch string) (int64, bool) {
	switch v := v.(type) {
	case []any:
		for i := 0; i+1 < len(v); i += 2 {
			if v[i] == ch {
				n, _ := v[i+1].(int64)
				return n, true
			}
		}
		return 0, true
	case map[string]any:
		n, _ := v[ch].(int64)
		return n, true
	case map[any]any:
		n, _ := v[ch].(int64)
		return n, true
	}
	return 0, false
}

// clientList returns the lines of CLIENT LIST of the master at addr.
func (c *cluster) clientList(t *testing.T, addr string) []string {
	t.Helper()
	list, ok := c.must(t, addr, "CLIENT", "LIST").(string)
	require.True(t, ok, "CLIENT LIST")
	return strings.Split(strings.TrimPrefix(list, "txt:"), "\n") // RESP3 verbatim text
}

// pubsubClients returns the ids of the pub/sub connections named name on
// the master at addr.
func (c *cluster) pubsubClients(t *testing.T, addr, name string) []string {
	t.Helper()
	var ids []string
	for _, line := range c.clientList(t, addr) {
		f := strings.Fields(line)
		if len(f) > 0 && strings.Contains(line, " name="+name+" ") && strings.Contains(line, " flags=P") {
			ids = append(ids, strings.TrimPrefix(f[0], "id="))
		}
	}
	return ids
}

// keys returns the keys matching pattern on every master.
func (c *cluster) keys(t *testing.T, pattern string) []string {
	t.Helper()
	var all []string
	for _, addr := range c.Addrs {
		ks, ok := c.must(t, addr, "KEYS", pattern).([]any)
		require.True(t, ok, "KEYS %q", pattern)
		for _, k := range ks {
			all = append(all, k.(string))
		}
	}
	return all
}

func (c *cluster) testLocksSpread(t *testing.T) {
	ctx := ctxT(t)
	s := c.store(t, "", Options{Prefix: "spread"})
	const locks = 100
	for i := range locks {
		res, err := s.Acquire(ctx, req(fmt.Sprint("lock-", i), "alice", time.Minute))
		require.NoError(t, err)
		require.True(t, res.Acquired)
	}
	total := 0
	for _, addr := range c.Addrs {
		keys, ok := c.must(t, addr, "KEYS", "spread:*:lock").([]any)
		require.True(t, ok)
		assert.NotEmpty(t, keys, "master %s holds no lock", addr)
		for _, k := range keys {
			fence := strings.TrimSuffix(k.(string), "lock") + "fence"
			assert.Equal(t, int64(1), c.must(t, addr, "EXISTS", fence), "the fence of %s is on another master", k)
		}
		total += len(keys)
	}
	assert.Equal(t, locks, total)
}

// subscribed is the outcome of one Subscribe on its own goroutine.
type subscribed struct {
	name string
	sub  driver.Subscription
	err  error
}

func (c *cluster) testWakeUps(t *testing.T, classic bool) {
	ctx := ctxT(t)
	client := fmt.Sprint("wake-", classic)
	opts := Options{Prefix: "wake", ClassicPubSub: classic}
	holder := c.store(t, "", opts)
	waiter := c.store(t, client, opts)
	layout := rediscore.Layout{Prefix: opts.Prefix}

	// Two names per master: a connection serves channels of several slots.
	byMaster := c.namesPerMaster(t, client, 2)
	results := make(chan subscribed, 64) // never blocks a sender
	count := 0
	for _, names := range byMaster {
		for _, n := range names {
			res, err := holder.Acquire(ctx, req(n, "alice", time.Minute))
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
	noSubscriptions(t, waiter)
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

// testNamesOfOneSlot: names whose channels share a slot are subscribed
// together when the hub batches them, and woken each.
func (c *cluster) testNamesOfOneSlot(t *testing.T) {
	ctx := ctxT(t)
	opts := Options{Prefix: "slot"}
	holder := c.store(t, "", opts)
	waiter := c.store(t, "", opts)
	layout := rediscore.Layout{Prefix: opts.Prefix}
	var names []string // two of one slot
	seen := make(map[int64]string)
	for i := 0; names == nil; i++ {
		name := fmt.Sprint("slot-", i)
		slot := c.slotOf(t, layout.Channel(name))
		if other, ok := seen[slot]; ok {
			names = []string{other, name}
		}
		seen[slot] = name
	}
	master := c.masterOf(t, layout.Channel(names[0]))
	first := "" // a name of another slot of that master
	for i := 0; first == ""; i++ {
		if name := fmt.Sprint("other-", i); c.masterOf(t, layout.Channel(name)) == master {
			first = name
		}
	}

	results := make(chan subscribed, 3)
	subscribe := func(n string) {
		go func() {
			sub, err := waiter.Subscribe(ctx, n, "t")
			results <- subscribed{n, sub, err}
		}()
	}
	for _, n := range names {
		res, err := holder.Acquire(ctx, req(n, "alice", time.Minute))
		require.NoError(t, err)
		require.True(t, res.Acquired)
	}
	// While the master is paused, the hub waits for the subscription of
	// first, and queues the two others, which it then writes together.
	c.must(t, master, "CLIENT", "PAUSE", "500", "ALL")
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
		t.Cleanup(r.sub.Close)
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

// testRefusedSubscription: a master's refusal of SSUBSCRIBE fails
// Subscribe or is reported as a lost subscription (see
// ClusterHarness.RefusalFailsSubscribe), and does not stop subscriptions
// once it ends.
func (c *cluster) testRefusedSubscription(t *testing.T) {
	ctx := ctxT(t)
	opts := Options{Prefix: "refused"}
	waiter := c.store(t, "", opts)
	const name = "refused"
	master := c.masterOf(t, rediscore.Layout{Prefix: opts.Prefix}.Channel(name))
	acl := func(rule string) {
		t.Helper()
		c.must(t, master, "ACL", "SETUSER", "default", rule)
	}
	acl("-ssubscribe") // as a master that does not know SSUBSCRIBE (Redis before 7)
	sub, err := waiter.Subscribe(ctx, name, "t")
	acl("+ssubscribe")
	if c.h.RefusalFailsSubscribe {
		require.Error(t, err)
		noSubscriptions(t, waiter)
		sub, err = waiter.Subscribe(ctx, name, "t")
		require.NoError(t, err)
	} else {
		require.NoError(t, err)
		woken(t, sub, "the refused subscription reported lost")
	}
	defer sub.Close()
	require.Eventually(t, func() bool {
		return c.shardSubscribers(master, rediscore.Layout{Prefix: opts.Prefix}.Channel(name)) == 1
	},
		patience, 10*time.Millisecond, "the subscription once the refusal ended")
	holder := c.store(t, "", opts)
	res, err := holder.Acquire(ctx, req(name, "alice", time.Minute))
	require.NoError(t, err)
	require.True(t, res.Acquired)
	waitedFor(t, holder, name)
	_, _, err = holder.Release(ctx, name, "alice", "")
	require.NoError(t, err)
	woken(t, sub, "a release after the refusal ended")
}

// awkwardNames contain hash tag braces, the escape character, key
// separators and non-ASCII characters.
var awkwardNames = []string{
	"{", "}", "{}", "}{", "{a}", "a{b}c", "{{x}}", "%", "%7B", "%7D}", "%25",
	"a:b", ":{x}:", "ключ", "锁{名}", "ü:{%}", "😀", "{😀}:x",
}

// testAwkwardNames runs every script, a grant and a broadcast on awkward
// names: none may fail with CROSSSLOT or a non-local key error.
func (c *cluster) testAwkwardNames(t *testing.T) {
	ctx := ctxT(t)
	opts := Options{Prefix: "awk"}
	a, b := c.store(t, "", opts), c.store(t, "", opts)
	var batch []driver.Extension
	for i, name := range awkwardNames {
		res, err := a.Acquire(ctx, req(name, "alice", time.Minute))
		require.NoError(t, err, name)
		require.True(t, res.Acquired, name)
		bob := req(name, "bob", time.Minute)
		res, err = b.AcquireFair(ctx, bob, time.Minute)
		require.NoError(t, err, name)
		require.False(t, res.Acquired, name)
		st, err := a.Inspect(ctx, name)
		require.NoError(t, err, name)
		assert.Equal(t, "alice", st.Owner, name)
		assert.Equal(t, 1, st.Waiters, name)
		q, err := a.InspectQueue(ctx, name)
		require.NoError(t, err, name)
		require.Len(t, q, 1, name)
		assert.Equal(t, bob.Ticket, q[0].Ticket, name)
		held, err := a.Extend(ctx, name, "alice", time.Minute)
		require.NoError(t, err, name)
		assert.True(t, held, name)
		batch = append(batch, driver.Extension{Name: name, Owner: "alice", Lease: time.Minute})

		sub, err := b.Subscribe(ctx, name, bob.Ticket)
		require.NoError(t, err, name)
		grant := i%2 == 0 // half the names are handed to bob, half broadcast
		if !grant {
			require.NoError(t, b.Leave(ctx, name, bob.Ticket), name)
		}
		held, _, err = a.Release(ctx, name, "alice", "")
		require.NoError(t, err, name)
		assert.True(t, held, name)
		woken(t, sub, "the wake-up of "+name)
		_, granted := sub.Granted()
		assert.Equal(t, grant, granted, name)
		sub.Close()
		if grant {
			require.NoError(t, b.Leave(ctx, name, bob.Ticket), name)
			held, _, err = b.Release(ctx, name, "bob", bob.Ticket)
			require.NoError(t, err, name)
			assert.True(t, held, "the grant of %s", name)
		}
	}
	require.NoError(t, a.ExtendBatch(ctx, batch))
	for _, e := range batch {
		assert.NoError(t, e.Err, e.Name)
		assert.False(t, e.Held, "%s was released", e.Name)
	}
	keys := c.keys(t, "awk:*")
	for _, k := range keys {
		assert.True(t, strings.HasSuffix(k, ":fence"), "key %q left behind", k)
	}
	assert.Len(t, keys, len(awkwardNames), "one fence per name")
}

func (c *cluster) testExtendBatch(t *testing.T) {
	ctx := ctxT(t)
	s := c.store(t, "", Options{Prefix: "batch"})
	var batch []driver.Extension
	for _, names := range c.namesPerMaster(t, "batch", 3) {
		for _, n := range names {
			res, err := s.Acquire(ctx, req(n, "alice", 10*time.Second))
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
	ctx := ctxT(t)
	const client = "loss"
	opts := Options{Prefix: "loss"}
	holder := c.store(t, "", opts)
	waiter := c.store(t, client, opts)
	layout := rediscore.Layout{Prefix: opts.Prefix}
	// Two slots per connection: resubscribing them in one command would
	// be rejected.
	byMaster := c.namesPerMaster(t, client, 2)
	subs := make(map[string]driver.Subscription)
	for _, names := range byMaster {
		for _, n := range names {
			subs[n] = subscribe(t, waiter, n, "t")
		}
	}
	for addr := range byMaster {
		ids := c.pubsubClients(t, addr, client)
		require.Len(t, ids, 1, "pub/sub connections to %s", addr)
		c.must(t, addr, "CLIENT", "KILL", "ID", ids[0])
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
		_, err := holder.Acquire(ctx, req(n, "alice", time.Minute))
		require.NoError(t, err)
		waitedFor(t, holder, n)
		_, _, err = holder.Release(ctx, n, "alice", "")
		require.NoError(t, err)
		woken(t, sub, "a wake-up of "+n+" after the resubscription")
	}
	assert.Equal(t, len(subs), waiter.ActiveSubscriptions())
}

func (c *cluster) testSlotMigration(t *testing.T) {
	ctx := ctxT(t)
	const name = "moving"
	opts := Options{Prefix: "move"}
	ch := rediscore.Layout{Prefix: opts.Prefix}.Channel(name)
	holder := c.store(t, "", opts)
	waiter := c.store(t, "", opts)
	sub := subscribe(t, waiter, name, "t")

	src := c.masterOf(t, ch)
	dst := c.Addrs[0]
	if dst == src {
		dst = c.Addrs[1]
	}
	require.Equal(t, int64(1), c.shardSubscribers(src, ch))
	slot := fmt.Sprint(c.slotOf(t, ch))
	dstID, ok := c.must(t, dst, "CLUSTER", "MYID").(string)
	require.True(t, ok)
	srcID, ok := c.must(t, src, "CLUSTER", "MYID").(string)
	require.True(t, ok)
	// The slot holds no key (the lock is free), so moving it is three
	// steps: import, migrate, assign it to dst everywhere.
	c.must(t, dst, "CLUSTER", "SETSLOT", slot, "IMPORTING", srcID)
	c.must(t, src, "CLUSTER", "SETSLOT", slot, "MIGRATING", dstID)
	for _, addr := range append([]string{dst, src}, c.Addrs...) {
		c.must(t, addr, "CLUSTER", "SETSLOT", slot, "NODE", dstID)
	}
	require.Equal(t, dst, c.masterOf(t, ch))

	woken(t, sub, "the wake-up when the slot moved")
	require.Eventually(t, func() bool { return c.shardSubscribers(dst, ch) == 1 },
		patience, 10*time.Millisecond, "the subscription on the new master")
	assert.Equal(t, int64(0), c.shardSubscribers(src, ch))

	res, err := holder.Acquire(ctx, req(name, "alice", time.Minute))
	require.NoError(t, err)
	require.True(t, res.Acquired)
	waitedFor(t, holder, name)
	_, _, err = holder.Release(ctx, name, "alice", "")
	require.NoError(t, err)
	woken(t, sub, "a release on the new master")
}

// testAcquireAllOneSlot: the atomic multi-lock step takes a set of names
// of one slot in one script, and declines (sending nothing) a set that
// spans slots.
func (c *cluster) testAcquireAllOneSlot(t *testing.T) {
	ctx := ctxT(t)
	opts := Options{Prefix: "multi"}
	s := c.store(t, "", opts)
	ma, ok := s.(driver.MultiAcquirer)
	require.True(t, ok, "%T does not implement driver.MultiAcquirer", s)
	layout := rediscore.Layout{Prefix: opts.Prefix}
	var same []string // two names of one slot
	seen := make(map[int64]string)
	for i := 0; same == nil; i++ {
		name := fmt.Sprint("multi-", i)
		slot := c.slotOf(t, layout.Keys(name)[rediscore.KeyLock])
		if prev, ok := seen[slot]; ok {
			same = []string{prev, name}
		}
		seen[slot] = name
	}
	other := "" // a name of another slot
	for slot, name := range seen {
		if slot != c.slotOf(t, layout.Keys(same[0])[rediscore.KeyLock]) {
			other = name
			break
		}
	}
	require.NotEmpty(t, other)
	owner := token.New()
	reqs := func(names ...string) []driver.AcquireRequest {
		rs := make([]driver.AcquireRequest, len(names))
		for i, n := range names {
			rs[i] = driver.AcquireRequest{Name: n, Owner: owner, Ticket: token.New(), Lease: time.Minute}
		}
		return rs
	}
	res, ok, err := ma.AcquireAll(ctx, reqs(same...), false)
	require.NoError(t, err)
	require.True(t, ok, "names %v of one slot were declined", same)
	for i, r := range res {
		require.True(t, r.Acquired, "%s not acquired", same[i])
	}
	for _, n := range same {
		held, _, err := s.Release(ctx, n, owner, "")
		require.NoError(t, err)
		require.True(t, held, "%s was not held", n)
	}
	res, ok, err = ma.AcquireAll(ctx, reqs(same[0], other), false)
	require.NoError(t, err)
	require.False(t, ok, "names of two slots were taken in one step: %v", res)
	for _, n := range []string{same[0], other} {
		st, err := s.(driver.Inspector).Inspect(ctx, n)
		require.NoError(t, err)
		require.Empty(t, st.Owner, "%s is held after a declined step", n)
	}
}
