package rueidisbackend

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/disgolock/disgo/internal/notifyhub"
)

// shards is the Transport of the hub for sharded pub/sub on a Redis Cluster
// client. A shard channel can only be subscribed on the master that serves
// its slot, so there is one dedicated connection per master, taken from the
// client's own client of that node (rueidis.Client.Nodes), and shared by
// every channel whose slot the master serves. The server rejects an
// SSUBSCRIBE or SUNSUBSCRIBE whose channels span slots, so every command
// carries the channels of one slot; those of one master go out in one
// pipeline.
//
// Channels are routed by a slot map read with CLUSTER SLOTS on first use,
// and read again once it proved stale: after a MOVED reply (the channels
// concerned are then routed once more at once) and after a connection
// failure.
//
// A connection that breaks is not restored as it was: its master may have
// left or handed its slots over. It is closed, and after a backoff its
// channels are handed back to the hub as dropped by the server, which wakes
// their waiters and subscribes those still wanted again, each on the
// current master of its slot. A master that drops channels on its own (it
// sends sunsubscribe for the channels of a slot that moved away) is handled
// by the hub the same way.
type shards struct {
	client rueidis.Client
	hub    *notifyhub.Hub
	ctx    context.Context // of the backoffs; cancelled by close
	cancel context.CancelFunc
	wg     sync.WaitGroup // watch and reroute goroutines

	// mu is held while commands are written, so that connections, the
	// slot map and what each connection holds change together.
	mu     sync.Mutex
	closed bool
	slots  []slotRange      // the slot map by first slot; nil until read and once stale
	nodes  map[string]*node // by master address
	where  map[string]*node // channel → the node whose connection holds it
}

// node is the pub/sub connection to one master. Its fields are guarded by
// shards.mu.
type node struct {
	dc      rueidis.DedicatedClient // nil while there is none
	since   time.Time               // when dc was made
	backoff time.Duration           // before the channels of a failed dc are routed again
}

// slotRange is a range of slots and the address of the master serving it.
type slotRange struct {
	first, last int64
	addr        string
}

// newShards returns the hub of a new shards and the function that closes
// both.
func newShards(client rueidis.Client, channel func(name string) string) (*notifyhub.Hub, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	s := &shards{
		client: client,
		ctx:    ctx,
		cancel: cancel,
		nodes:  make(map[string]*node),
		where:  make(map[string]*node),
	}
	s.hub = notifyhub.New(s, channel)
	return s.hub, s.close
}

// Subscribe implements notifyhub.Transport: one SSUBSCRIBE per slot, on the
// connection to the slot's master. Channels answered with MOVED are routed
// once more on a fresh slot map.
func (s *shards) Subscribe(ctx context.Context, channels ...string) error {
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for attempt := 0; attempt < 2 && len(channels) > 0; attempt++ {
		var err error
		if channels, err = s.subscribe(ctx, channels); err != nil {
			errs = append(errs, err)
		}
	}
	if len(channels) > 0 {
		errs = append(errs, fmt.Errorf("rueidisbackend: the slot of channel %q keeps moving", channels[0]))
	}
	return errors.Join(errs...)
}

// subscribe writes the subscriptions of channels and returns those
// answered with MOVED, and the last other error. Called with s.mu held.
func (s *shards) subscribe(ctx context.Context, channels []string) (moved []string, err error) {
	if s.closed {
		return nil, errClosed
	}
	if s.slots == nil {
		if err := s.readSlots(ctx); err != nil {
			return nil, err
		}
	}
	byAddr := make(map[string][]string)
	for _, ch := range channels {
		addr := s.master(ch)
		if addr == "" {
			s.slots = nil
			return nil, fmt.Errorf("rueidisbackend: no master serves the slot of channel %q", ch)
		}
		byAddr[addr] = append(byAddr[addr], ch)
	}
	for addr, chs := range byAddr {
		n, cerr := s.connect(addr)
		if cerr != nil {
			return nil, cerr
		}
		groups := s.bySlot(chs)
		cmds := make(rueidis.Commands, len(groups))
		for i, g := range groups {
			cmds[i] = n.dc.B().Ssubscribe().Channel(g...).Build()
		}
		dc := n.dc
		for i, res := range dc.DoMulti(ctx, cmds...) {
			rerr := res.Error()
			replyErr, isReply := rueidis.IsRedisErr(rerr)
			switch {
			case rerr == nil:
				for _, ch := range groups[i] {
					s.where[ch] = n
				}
			case isReply:
				if _, isMoved := replyErr.IsMoved(); isMoved {
					s.slots = nil
					moved = append(moved, groups[i]...)
				} else {
					err = rerr
				}
			default:
				s.drop(n, dc) // its state is unknown
				return nil, rerr
			}
		}
	}
	return moved, err
}

// Unsubscribe implements notifyhub.Transport: one SUNSUBSCRIBE per slot,
// on the connection that holds the slot's channels. A channel no
// connection holds (its connection failed) is unsubscribed already; the
// hub is told so at once, since no server will confirm it.
func (s *shards) Unsubscribe(ctx context.Context, channels ...string) error {
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	byNode := make(map[*node][]string)
	for _, ch := range channels {
		if n := s.where[ch]; n != nil {
			byNode[n] = append(byNode[n], ch)
		} else {
			s.hub.Confirmed(ch, false)
		}
		delete(s.where, ch)
	}
	var err error
	for n, chs := range byNode {
		groups := s.bySlot(chs)
		cmds := make(rueidis.Commands, len(groups))
		for i, g := range groups {
			cmds[i] = n.dc.B().Sunsubscribe().Channel(g...).Build()
		}
		dc := n.dc
		for _, res := range dc.DoMulti(ctx, cmds...) {
			if rerr := res.Error(); fatal(rerr) {
				s.drop(n, dc)
				return rerr
			} else if rerr != nil {
				err = rerr
			}
		}
	}
	return err
}

// bySlot splits channels into groups of one slot each.
func (s *shards) bySlot(channels []string) [][]string {
	index := make(map[uint16]int)
	var groups [][]string
	for _, ch := range channels {
		slot := s.slot(ch)
		i, ok := index[slot]
		if !ok {
			i = len(groups)
			index[slot] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], ch)
	}
	return groups
}

// slot returns the cluster slot of a channel, as the client computes it.
func (s *shards) slot(ch string) uint16 {
	cmd := s.client.B().Ssubscribe().Channel(ch).Build()
	return cmd.Slot()
}

// master returns the address of the master that serves ch's slot by the
// slot map, or "" if it names none. Called with s.mu held.
func (s *shards) master(ch string) string {
	slot := int64(s.slot(ch))
	i, found := slices.BinarySearchFunc(s.slots, slot, func(r slotRange, slot int64) int {
		switch {
		case r.last < slot:
			return -1
		case r.first > slot:
			return 1
		}
		return 0
	})
	if !found {
		return ""
	}
	return s.slots[i].addr
}

// readSlots reads the slot map from the first node of the client that
// answers CLUSTER SLOTS. Called with s.mu held.
func (s *shards) readSlots(ctx context.Context) error {
	err := errors.New("rueidisbackend: the cluster client knows no node")
	for addr, c := range s.client.Nodes() {
		var reply []rueidis.RedisMessage
		if reply, err = c.Do(ctx, c.B().ClusterSlots().Build()).ToArray(); err == nil {
			if s.slots, err = parseSlots(reply, addr); err == nil {
				return nil
			}
		}
	}
	return fmt.Errorf("rueidisbackend: reading the slot map: %w", err)
}

// parseSlots decodes a CLUSTER SLOTS reply of the node at from into slot
// ranges sorted by first slot. A master whose host is empty is the
// answering node; one whose host is "?" is unknown and left out.
func parseSlots(reply []rueidis.RedisMessage, from string) ([]slotRange, error) {
	bad := func(err error) ([]slotRange, error) {
		return nil, fmt.Errorf("unexpected CLUSTER SLOTS reply: %w", err)
	}
	ranges := make([]slotRange, 0, len(reply))
	for _, r := range reply {
		f, err := r.ToArray()
		if err == nil && len(f) < 3 {
			err = errors.New("a range has fewer than 3 elements")
		}
		if err != nil {
			return bad(err)
		}
		first, err1 := f[0].AsInt64()
		last, err2 := f[1].AsInt64()
		master, err3 := f[2].ToArray()
		if err := errors.Join(err1, err2, err3); err != nil {
			return bad(err)
		}
		if len(master) < 2 {
			return bad(errors.New("a master has fewer than 2 elements"))
		}
		host, err1 := master[0].ToString()
		port, err2 := master[1].AsInt64()
		if err := errors.Join(err1, err2); err != nil {
			return bad(err)
		}
		switch host {
		case "?":
			continue
		case "":
			host, _, _ = net.SplitHostPort(from)
		}
		ranges = append(ranges, slotRange{first: first, last: last, addr: net.JoinHostPort(host, strconv.FormatInt(port, 10))})
	}
	slices.SortFunc(ranges, func(a, b slotRange) int { return cmp.Compare(a.first, b.first) })
	return ranges, nil
}

// connect returns the node of the master at addr with a connection,
// making the connection if there is none. Called with s.mu held.
func (s *shards) connect(addr string) (*node, error) {
	n := s.nodes[addr]
	if n == nil {
		n = &node{backoff: minBackoff}
		s.nodes[addr] = n
	}
	if n.dc != nil {
		return n, nil
	}
	c := s.client.Nodes()[addr]
	if c == nil {
		s.slots = nil
		return nil, fmt.Errorf("rueidisbackend: the cluster client has no connection to master %s", addr)
	}
	dc, _ := c.Dedicate() // dc.Close returns the connection to the client
	n.dc, n.since = dc, time.Now()
	broken := dc.SetPubSubHooks(hooks(s.hub))
	s.wg.Add(1)
	go s.watch(n, dc, broken)
	return n, nil
}

// watch waits until dc breaks or is closed, then drops it.
func (s *shards) watch(n *node, dc rueidis.DedicatedClient, broken <-chan error) {
	defer s.wg.Done()
	for range broken { // closed once the hooks are no longer called
	}
	s.mu.Lock()
	s.drop(n, dc)
	s.mu.Unlock()
}

// drop gives up dc if it is still n's connection: it forgets the slot map
// and the channels dc held, and hands them back to the hub after the
// node's backoff. Called with s.mu held.
func (s *shards) drop(n *node, dc rueidis.DedicatedClient) {
	if n.dc != dc || s.closed {
		return
	}
	n.dc = nil
	s.slots = nil
	var lost []string
	for ch, at := range s.where {
		if at == n {
			lost = append(lost, ch)
			delete(s.where, ch)
		}
	}
	if time.Since(n.since) > maxBackoff {
		n.backoff = minBackoff // it was healthy for a while
	}
	wait := n.backoff
	n.backoff = min(2*wait, maxBackoff)
	s.wg.Add(1)
	go s.reroute(dc, lost, wait)
}

// reroute closes a failed connection and, after wait, reports its channels
// to the hub as dropped by the server.
func (s *shards) reroute(dc rueidis.DedicatedClient, lost []string, wait time.Duration) {
	defer s.wg.Done()
	dc.Close()
	if len(lost) == 0 {
		return
	}
	select {
	case <-s.ctx.Done():
		return
	case <-time.After(wait):
	}
	for _, ch := range lost {
		// As after a reconnect (Hub.Reset), a subscribe written on the
		// failed connection counts as confirmed; then the server is
		// reported to have dropped the channel, which wakes its waiters and
		// subscribes it again if it is still wanted.
		s.hub.Confirmed(ch, true)
		s.hub.Confirmed(ch, false)
	}
}

// close closes the hub and every connection and waits for the goroutines.
func (s *shards) close() {
	s.cancel()
	s.hub.Close() // cancels and waits for the hub's writes
	s.mu.Lock()
	s.closed = true
	var open []rueidis.DedicatedClient
	for _, n := range s.nodes {
		if n.dc != nil {
			open = append(open, n.dc)
			n.dc = nil
		}
	}
	s.mu.Unlock()
	for _, dc := range open {
		dc.Close()
	}
	s.wg.Wait()
}
