package redisstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/disgolock/disgo/internal/notifyhub"
	"github.com/disgolock/disgo/locker/driver"
)

const (
	// writeTimeout bounds one write of (un)subscribe commands; one that
	// times out makes the Store drop the connection.
	writeTimeout = 5 * time.Second
	// Backoff before the channels of a failed connection are routed again.
	minBackoff = 10 * time.Millisecond
	maxBackoff = time.Second
)

// Subscribe implements driver.Notifier: it returns once the server
// confirmed the subscription of name's channel (and of the Store's inbox
// channel of name). Waiters of one name share one server subscription; the
// last Close of a name unsubscribes it, after a short linger (see
// notifyhub.DefaultLinger). On ctx cancellation it returns an error
// wrapping ctx.Err() and holds nothing; when the connection cannot be made
// or the server refuses the subscription, an error; after Store.Close, an
// error.
//
// On a standalone server, and on Cluster with Options.ClassicPubSub, every
// channel shares one pub/sub connection, made on first use. On Cluster
// with sharded pub/sub (the default), a channel can only be subscribed on
// the master that serves its slot: the Store reads the slot map with
// CLUSTER SLOTS, keeps one connection per master, shared by every channel
// of that master, and writes one SSUBSCRIBE per slot; a channel answered
// with MOVED is routed once more on a fresh slot map.
//
// When a connection breaks (or a master drops the channels of a slot that
// moved away), the Store closes it and, after a backoff, wakes the
// waiters of its channels (they may have missed a message) and subscribes
// the channels still wanted again, each on the current master of its slot.
func (s *Store) Subscribe(ctx context.Context, name, ticket string) (driver.Subscription, error) {
	return s.hub.Subscribe(ctx, hubName(name), ticket)
}

// SubscribeActive implements driver.Notifier: it subscribes
// without a round trip when name's channel is subscribed and confirmed
// already (by other waiters of this Store, or lingering after recent ones),
// and returns false, holding nothing, otherwise.
func (s *Store) SubscribeActive(name, ticket string) (driver.Subscription, bool) {
	return s.hub.SubscribeActive(hubName(name), ticket)
}

// ActiveSubscriptions returns the number of lock names whose channel the
// Store holds (or is setting up) a server subscription for, including
// those that linger for a moment after their last waiter left. Each kind
// counts apart: the mutex, the read-write lock (both views) and the
// semaphore of one name are up to three.
func (s *Store) ActiveSubscriptions() int { return s.hub.ActiveSubscriptions() }

// router is the Transport of the Store's hub: it routes every channel to a
// pub/sub connection, one per master on a Cluster with sharded pub/sub,
// one in all otherwise. mu is held while commands are written, so that
// connections, the slot map and what each connection holds change
// together.
type router struct {
	name    string
	client  Client
	classic bool
	sharded bool // route by slot
	hub     *notifyhub.Hub
	log     *slog.Logger    // background events; nil: silent
	ctx     context.Context // of the backoffs; cancelled by close
	cancel  context.CancelFunc
	wg      sync.WaitGroup // watch and reroute goroutines

	mu     sync.Mutex
	closed bool
	slots  []slotRange      // the slot map by first slot; nil until read and once stale
	nodes  map[string]*node // by master address ("" when not sharded)
	where  map[string]*node // channel → the node whose connection holds it
}

// node is the pub/sub connection to one master. Its fields are guarded by
// router.mu. Every channel router.where names it for is held by r.
type node struct {
	addr    string   // the master's address; "" when not sharded
	r       Receiver // nil while there is none
	since   time.Time
	backoff time.Duration // before the channels of a failed r are routed again
}

// slotRange is a range of slots and the address of the master serving it.
type slotRange struct {
	first, last int64
	addr        string
}

func newRouter(name string, client Client, classic bool) *router {
	ctx, cancel := context.WithCancel(context.Background())
	return &router{
		name: name, client: client, classic: classic, sharded: !classic && client.Cluster(),
		ctx: ctx, cancel: cancel, nodes: make(map[string]*node), where: make(map[string]*node),
	}
}

// Subscribe implements notifyhub.Transport.
func (s *router) Subscribe(ctx context.Context, channels ...string) error {
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
		errs = append(errs, fmt.Errorf("%s: the slot of channel %q keeps moving", s.name, channels[0]))
	}
	return errors.Join(errs...)
}

// subscribe writes the subscriptions of channels and returns those
// answered with MOVED, and the last other error. Called with s.mu held.
func (s *router) subscribe(ctx context.Context, channels []string) (moved []string, err error) {
	if s.closed {
		return nil, fmt.Errorf("%s: store closed", s.name)
	}
	byAddr, err := s.route(ctx, channels)
	if err != nil {
		return nil, err
	}
	for addr, chs := range byAddr {
		n, cerr := s.connect(ctx, addr)
		if cerr != nil {
			return nil, cerr
		}
		for _, ch := range chs {
			s.where[ch] = n // until refused; a failed write reroutes them
		}
		r, groups := n.r, s.groups(chs)
		for i, werr := range r.Write(ctx, true, groups) {
			switch {
			case werr == nil:
			case !s.client.Refused(werr):
				s.drop(n, r) // its state is unknown
				return nil, werr
			case s.sharded && strings.HasPrefix(werr.Error(), "MOVED"):
				s.slots = nil
				moved = append(moved, groups[i]...)
			default:
				err = werr
			}
			if werr != nil {
				for _, ch := range groups[i] {
					delete(s.where, ch)
				}
			}
		}
	}
	return moved, err
}

// Unsubscribe implements notifyhub.Transport: one (S)UNSUBSCRIBE per slot,
// on the connection that holds the slot's channels. A channel no
// connection holds (its connection failed) is unsubscribed already; the
// hub is told so at once, since no server will confirm it.
func (s *router) Unsubscribe(ctx context.Context, channels ...string) error {
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
		r := n.r
		for _, werr := range r.Write(ctx, false, s.groups(chs)) {
			if werr != nil && !s.client.Refused(werr) {
				s.drop(n, r)
				return werr
			} else if werr != nil {
				err = werr
			}
		}
	}
	return err
}

// route splits channels by the address of their master. Called with s.mu
// held.
func (s *router) route(ctx context.Context, channels []string) (map[string][]string, error) {
	if !s.sharded {
		return map[string][]string{"": channels}, nil
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
			return nil, fmt.Errorf("%s: no master serves the slot of channel %q", s.name, ch)
		}
		byAddr[addr] = append(byAddr[addr], ch)
	}
	return byAddr, nil
}

// groups splits channels into the groups of one command each: one per slot
// when sharded (the server rejects a command whose channels span slots).
func (s *router) groups(channels []string) [][]string {
	if !s.sharded {
		return [][]string{channels}
	}
	index := make(map[uint16]int)
	var groups [][]string
	for _, ch := range channels {
		slot := Slot(ch)
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

// master returns the address of the master that serves ch's slot by the
// slot map, or "" if it names none. Called with s.mu held.
func (s *router) master(ch string) string {
	slot := int64(Slot(ch))
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

// readSlots reads the slot map. Called with s.mu held.
func (s *router) readSlots(ctx context.Context) error {
	reply, from, err := s.client.ClusterSlots(ctx)
	if err == nil {
		s.slots, err = parseSlots(reply, from)
	}
	if err != nil {
		return fmt.Errorf("%s: reading the slot map: %w", s.name, err)
	}
	return nil
}

// parseSlots decodes a CLUSTER SLOTS reply of the node at from into slot
// ranges sorted by first slot. A master whose host is empty is the
// answering node; one whose host is "?" is unknown and left out.
func parseSlots(reply any, from string) ([]slotRange, error) {
	bad := fmt.Errorf("unexpected CLUSTER SLOTS reply %v", reply)
	all, ok := reply.([]any)
	if !ok {
		return nil, bad
	}
	ranges := make([]slotRange, 0, len(all))
	for _, r := range all {
		f, _ := r.([]any)
		if len(f) < 3 {
			return nil, bad
		}
		var bounds [2]int64
		err := decode(bounds[:], f[:2])
		master, _ := f[2].([]any)
		if err != nil || len(master) < 2 {
			return nil, bad
		}
		host, ok := master[0].(string)
		port, err := integer(master[1], nil)
		if !ok || err != nil {
			return nil, bad
		}
		switch host {
		case "?":
			continue
		case "":
			host, _, _ = net.SplitHostPort(from)
		}
		ranges = append(ranges, slotRange{first: bounds[0], last: bounds[1], addr: net.JoinHostPort(host, strconv.FormatInt(port, 10))})
	}
	slices.SortFunc(ranges, func(a, b slotRange) int { return cmp.Compare(a.first, b.first) })
	return ranges, nil
}

// connect returns the node of the master at addr with a connection,
// making the connection if there is none. Called with s.mu held.
func (s *router) connect(ctx context.Context, addr string) (*node, error) {
	n := s.nodes[addr]
	if n == nil {
		n = &node{addr: addr, backoff: minBackoff}
		s.nodes[addr] = n
	}
	if n.r != nil {
		return n, nil
	}
	r, err := s.client.Listen(ctx, addr, s.classic, s.hub)
	if err != nil {
		s.slots = nil
		return nil, err
	}
	n.r, n.since = r, time.Now()
	s.wg.Add(1)
	go s.watch(n, r)
	return n, nil
}

// watch waits until r breaks or is closed, then drops it.
func (s *router) watch(n *node, r Receiver) {
	defer s.wg.Done()
	for range r.Done() { // closed once nothing more is delivered
	}
	s.mu.Lock()
	s.drop(n, r)
	s.mu.Unlock()
}

// drop gives up r if it is still n's connection: it forgets the slot map
// and the channels r held, and hands them back to the hub after the node's
// backoff. Called with s.mu held.
func (s *router) drop(n *node, r Receiver) {
	if n.r != r || s.closed {
		return
	}
	n.r = nil
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
	if s.log != nil {
		s.log.Warn("disgo: pub/sub connection lost; its channels are subscribed again after a backoff",
			"adapter", s.name, "node", n.addr, "channels", len(lost), "backoff", wait)
	}
	s.wg.Add(1)
	go s.reroute(r, lost, wait)
}

// reroute closes a failed connection and, after wait, reports its channels
// to the hub as dropped by the server.
func (s *router) reroute(r Receiver, lost []string, wait time.Duration) {
	defer s.wg.Done()
	r.Close()
	if len(lost) == 0 {
		return
	}
	select {
	case <-s.ctx.Done():
		return
	case <-time.After(wait):
	}
	if s.log != nil {
		s.log.Info("disgo: pub/sub channels subscribed again after a lost connection; their waiters were woken",
			"adapter", s.name, "channels", len(lost))
	}
	for _, ch := range lost {
		// A subscribe written on the failed connection counts as
		// confirmed; then the server is reported to have dropped the
		// channel, which wakes its waiters and subscribes it again if it
		// is still wanted.
		s.hub.Confirmed(ch, true)
		s.hub.Confirmed(ch, false)
	}
}

// close closes the hub and every connection and waits for the goroutines.
func (s *router) close() {
	s.cancel()
	s.hub.Close() // cancels and waits for the hub's writes
	s.mu.Lock()
	s.closed = true
	var open []Receiver
	for _, n := range s.nodes {
		if n.r != nil {
			open = append(open, n.r)
			n.r = nil
		}
	}
	s.mu.Unlock()
	for _, r := range open {
		r.Close()
	}
	s.wg.Wait()
}

// Slot returns the Redis Cluster slot of key: the CRC16 (XMODEM) of its
// hash tag (the part between the first '{' and the next '}', when not
// empty) or of the whole key, modulo 16384.
func Slot(key string) uint16 {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for k := 0; k < len(key); k++ {
		crc ^= uint16(key[k]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc % 16384
}
