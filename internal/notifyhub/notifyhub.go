// Package notifyhub shares one store pub/sub connection among every waiter
// of a process: it counts subscriptions per channel, subscribes the store
// channel when the first waiter comes and unsubscribes when the last one
// leaves, waits for the store's confirmation before a waiter proceeds, and
// routes each release message to the waiter it names. It knows nothing of a
// client library: its user (internal/redisstore) supplies a [Transport]
// that writes (un)subscribe commands, and feeds what its connections read
// back into the [Hub] ([Hub.Message], [Hub.Confirmed], [Hub.Reset]).
//
// # Confirmations
//
// A store confirms every (un)subscribe of a channel separately, in the order
// the commands were written to the connection. The hub keeps, per channel,
// the operations written and not yet confirmed, oldest first, and matches
// each confirmation to the oldest operation of its kind. So in a quick
// subscribe, unsubscribe, subscribe of one channel the first confirmation
// releases nobody who waits for the second subscribe. A confirmation that
// matches nothing tells of a reconnect the hub was not told about (the
// driver resubscribed on its own, so messages may have been lost) and wakes
// the channel's waiters.
package notifyhub

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/disgolock/disgo/internal/rediscore"
	"github.com/disgolock/disgo/locker/driver"
)

// ErrClosed is returned by Subscribe on a closed Hub, and by a Subscribe
// that was waiting for its confirmation when the Hub closed.
var ErrClosed = errors.New("notifyhub: closed")

// Transport writes subscription commands on one pub/sub connection. It only
// writes: the adapter reads the connection and reports what the store sent
// back to the Hub. The Hub calls one method at a time, from one goroutine,
// never with an empty list, and never while it holds its lock, so the
// methods may block (bounded by ctx and the driver's write timeouts).
type Transport interface {
	// Subscribe writes one command subscribing channels (SUBSCRIBE or
	// SSUBSCRIBE). It returns once the command is written; the store's
	// confirmations arrive later through Hub.Confirmed. An error means the
	// command may not have reached the store.
	Subscribe(ctx context.Context, channels ...string) error
	// Unsubscribe writes one command unsubscribing channels (UNSUBSCRIBE or
	// SUNSUBSCRIBE), like Subscribe.
	Unsubscribe(ctx context.Context, channels ...string) error
}

// Hub manages the subscriptions of one pub/sub connection and implements
// driver.Notifier over it. All methods are safe for concurrent use.
type Hub struct {
	t       Transport
	channel func(name string) string
	inbox   func(name string) string // nil: no inbox channels (see SetInbox)
	ctx     context.Context          // of the writes; cancelled by Close
	cancel  context.CancelFunc
	sender  sync.WaitGroup

	mu      sync.Mutex
	linger  time.Duration
	entries map[string]*entry // by channel
	byName  map[string]*entry // the entry of each name's own channel (not its inbox), by lock name
	outbox  []*op             // operations to write, in order
	sending bool              // a sender goroutine is draining outbox
	closed  bool
}

// entry is the state of one channel.
type entry struct {
	channel string
	name    string // the lock name whose channel (or inbox) it is
	inbox   bool   // the inbox channel of a name (see Hub.SetInbox)
	subs    map[*subscription]struct{}
	// sub is the latest subscribe operation while the hub wants the channel
	// subscribed; nil while it wants it unsubscribed.
	sub *op
	// pending holds the operations queued or written and not yet
	// confirmed, oldest first; the written ones come first.
	pending []*op
	// idle, while the channel has no subscriptions but its store
	// subscription lingers, unsubscribes it when it fires.
	idle *time.Timer
	// retry, after a subscribe that failed while subscriptions still
	// want the channel, writes it again when it fires; backoff is the wait
	// before the next one, reset by a confirmed subscribe.
	retry   *time.Timer
	backoff time.Duration
}

// Backoff of the retries of a failed subscribe that is still wanted.
const (
	minRetry = 10 * time.Millisecond
	maxRetry = time.Second
)

// op is one subscribe or unsubscribe of a channel.
type op struct {
	e         *entry
	subscribe bool
	sent      bool          // handed to the Transport
	renewal   bool          // renews a subscription the store dropped, or retries that
	finished  bool          // confirmed, failed, or given up
	err       error         // why it failed; set before done is closed
	done      chan struct{} // subscribe only: closed when finished
}

// DefaultLinger is how long a store subscription outlives its last waiter,
// so that a name waited on again and again (a contended lock) is not
// unsubscribed and subscribed anew for every wait.
const DefaultLinger = time.Second

// New returns a Hub writing through t. channel maps a lock name to its store
// channel (Subscribe takes lock names); nil means the name is the channel.
// The store subscription of a channel lingers DefaultLinger after its last
// Subscription closed.
func New(t Transport, channel func(name string) string) *Hub {
	if channel == nil {
		channel = func(name string) string { return name }
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Hub{t: t, channel: channel, ctx: ctx, cancel: cancel, entries: make(map[string]*entry), byName: make(map[string]*entry), linger: DefaultLinger}
}

// SetLinger changes how long a store subscription outlives its last
// waiter; zero unsubscribes at once. Call it before the first Subscribe.
func (h *Hub) SetLinger(d time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.linger = max(d, 0)
}

// SetInbox makes every Subscribe of a name also subscribe inbox(name): the
// channel on which the store sends grants to this hub's waiters only, so
// that other processes waiting on the name are not woken by them. Both
// channels go out in one command and a Subscription listens on both. Call
// it before the first Subscribe.
func (h *Hub) SetInbox(inbox func(name string) string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.inbox = inbox
}

// channels returns the channels a subscription of name listens on.
func (h *Hub) channels(name string) []string {
	if h.inbox == nil {
		return []string{h.channel(name)}
	}
	return []string{h.channel(name), h.inbox(name)}
}

var _ driver.Notifier = (*Hub)(nil)

// Subscribe registers interest in wake-ups of name addressed to ticket (and
// in broadcasts). It returns once the store confirmed the subscription of
// the channel, so that no message published after it returns can be missed;
// a channel already subscribed returns at once. Waiters of one channel share
// one store subscription and one pending confirmation.
//
// On ctx cancellation it returns an error wrapping ctx.Err() and holds
// nothing. If the Transport fails to write the subscription it returns that
// error; on a closed Hub, an error matching ErrClosed.
func (h *Hub) Subscribe(ctx context.Context, name, ticket string) (driver.Subscription, error) {
	ch := h.channel(name)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("notifyhub: subscribe %q: %w", ch, err)
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, ErrClosed
	}
	s := &subscription{h: h, ticket: ticket, wake: make(chan struct{}, 1)}
	var ops []*op
	for i, c := range h.channels(name) {
		e := h.entries[c]
		if e == nil {
			e = &entry{channel: c, name: name, inbox: i > 0, subs: make(map[*subscription]struct{})}
			h.entries[c] = e
			if i == 0 {
				h.byName[name] = e
			}
		}
		e.add(s)
		if e.sub == nil || e.sub.err != nil {
			e.stopRetry()
			e.sub = h.enqueue(e, true)
		}
		ops = append(ops, e.sub)
	}
	h.mu.Unlock()

	for _, o := range ops {
		select {
		case <-o.done:
			if o.err == nil {
				continue
			}
			s.Close()
			if errors.Is(o.err, ErrClosed) {
				return nil, o.err
			}
			return nil, fmt.Errorf("notifyhub: subscribe %q: %w", o.e.channel, o.err)
		case <-ctx.Done():
			s.Close()
			return nil, fmt.Errorf("notifyhub: subscribe %q: %w", ch, ctx.Err())
		}
	}
	return s, nil
}

// SubscribeActive implements driver.Notifier: it subscribes without
// a store round trip when the channel of name is subscribed and confirmed
// already (by other waiters, or lingering after recent ones), and returns
// false, holding nothing, otherwise.
func (h *Hub) SubscribeActive(name, ticket string) (driver.Subscription, bool) {
	// A name nobody in this process waits on, the usual case of an
	// uncontended lock, is told by one map lookup, building nothing.
	h.mu.Lock()
	e := h.byName[name]
	h.mu.Unlock()
	if e == nil {
		return nil, false
	}
	chs := h.channels(name)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, false
	}
	es := make([]*entry, len(chs))
	for i, c := range chs {
		e := h.entries[c]
		if e == nil || e.sub == nil || !e.sub.finished || e.sub.err != nil {
			return nil, false
		}
		es[i] = e
	}
	s := &subscription{h: h, ticket: ticket, wake: make(chan struct{}, 1)}
	for _, e := range es {
		e.add(s)
	}
	return s, true
}

// add registers s on e and ends e's lingering. Called with h.mu held.
func (e *entry) add(s *subscription) {
	if e.idle != nil {
		e.idle.Stop()
		e.idle = nil
	}
	e.subs[s] = struct{}{}
	s.es = append(s.es, e)
}

// unsubscribeIdle ends the lingering store subscription of e. Called with
// h.mu held, when e has no subscriptions.
func (h *Hub) unsubscribeIdle(e *entry) {
	if e.idle != nil {
		e.idle.Stop()
		e.idle = nil
	}
	e.stopRetry()
	if e.sub != nil {
		e.sub = nil
		h.enqueue(e, false)
	}
	h.tidy(e)
}

// ActiveSubscriptions returns the number of lock names whose channel the
// hub holds or is setting up a store subscription for: those with at least
// one open Subscription, whose Subscribe is pending, or whose subscription
// lingers after its last waiter (for the Hub's linger time). Inbox channels
// are not counted: they come and go with their name's channel.
func (h *Hub) ActiveSubscriptions() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, e := range h.entries {
		if e.sub != nil && !e.inbox {
			n++
		}
	}
	return n
}

// Message delivers a message the store published on channel: a ticket wakes
// the subscriptions of that ticket, "<ticket> <fence>" tells them that the
// lock was granted to the ticket with that fencing token (see
// driver.Subscription), and rediscore.Broadcast wakes all of the channel. It
// never blocks.
func (h *Hub) Message(channel, payload string) {
	ticket, fence := rediscore.ParseWake(payload)
	h.mu.Lock()
	defer h.mu.Unlock()
	if e := h.entries[channel]; e != nil {
		for s := range e.subs {
			if ticket == rediscore.Broadcast || ticket == s.ticket {
				if fence > 0 && ticket == s.ticket {
					s.fence = fence
				}
				s.signal()
			}
		}
	}
}

// Confirmed reports the store's confirmation of a subscribe (subscribed ==
// true) or unsubscribe of channel, in the order the connection delivered
// them. A confirmation nobody asked for is taken as a sign of a reconnect or
// of the store dropping the subscription: the channel's subscriptions are
// woken, and a dropped subscription that is still wanted is renewed; a
// renewal the Transport fails to write is written again after a backoff
// (10 ms, doubling up to 1 s) until it is written or nobody wants it. The
// confirmation of a renewal wakes the channel's subscriptions again, since
// what was published while it was not subscribed is lost.
func (h *Hub) Confirmed(channel string, subscribed bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.entries[channel]
	if e == nil || h.closed {
		return
	}
	i := slices.IndexFunc(e.pending, func(o *op) bool { return o.sent && o.subscribe == subscribed })
	if i < 0 {
		e.wakeAll()
		if !subscribed && e.sub != nil && e.sub.finished {
			// The store ended a subscription that is still wanted (Redis
			// Cluster does so to shard channels whose slot moved).
			h.renew(e)
		}
		return
	}
	if i > 0 {
		// Earlier operations lost their confirmations in a reconnect.
		e.wakeAll()
	}
	renewed := false
	for _, o := range e.pending[:i+1] {
		renewed = renewed || o.renewal
		o.finish(nil)
	}
	if renewed {
		// Messages published while the channel was not subscribed are
		// lost: the subscriptions look again.
		e.wakeAll()
	}
	if subscribed {
		e.backoff = 0
	}
	e.pending = slices.Delete(e.pending, 0, i+1)
	h.tidy(e)
}

// Reset tells the hub that the connection was re-established and the
// Transport's driver resubscribed every channel it had subscribed:
// confirmations of commands written before are lost, and so may be
// messages. Every subscription is woken, and every Subscribe waiting for a
// written subscribe returns.
func (h *Hub) Reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	for _, e := range h.entries {
		e.pending = slices.DeleteFunc(e.pending, func(o *op) bool {
			if o.sent {
				o.finish(nil)
			}
			return o.sent
		})
		e.wakeAll()
		h.tidy(e)
	}
}

// Close wakes every subscription, makes pending and later Subscribe calls
// fail with ErrClosed, and waits for the hub's writer goroutine. It does
// not unsubscribe: the caller closes the connection. Subscriptions may
// still be closed afterwards. Close is idempotent.
func (h *Hub) Close() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	for _, e := range h.entries {
		for _, o := range e.pending {
			o.finish(ErrClosed)
		}
		if e.idle != nil {
			e.idle.Stop()
			e.idle = nil
		}
		e.stopRetry()
		e.pending, e.sub = nil, nil
		e.wakeAll()
		h.tidy(e)
	}
	h.outbox = nil
	h.mu.Unlock()
	h.cancel()
	h.sender.Wait()
}

// enqueue queues an operation of e for writing and makes sure a sender
// runs. Called with h.mu held.
func (h *Hub) enqueue(e *entry, subscribe bool) *op {
	o := &op{e: e, subscribe: subscribe}
	if subscribe {
		o.done = make(chan struct{})
	}
	e.pending = append(e.pending, o)
	h.outbox = append(h.outbox, o)
	if !h.sending {
		h.sending = true
		h.sender.Add(1)
		go h.send()
	}
	return o
}

// send writes the outbox in order, consecutive operations of one kind in
// one command, and exits when the outbox is empty.
func (h *Hub) send() {
	defer h.sender.Done()
	for {
		h.mu.Lock()
		if h.closed || len(h.outbox) == 0 {
			h.sending = false
			h.mu.Unlock()
			return
		}
		subscribe := h.outbox[0].subscribe
		n := 1
		for n < len(h.outbox) && h.outbox[n].subscribe == subscribe {
			n++
		}
		batch := h.outbox[:n:n]
		h.outbox = h.outbox[n:]
		channels := make([]string, n)
		for i, o := range batch {
			o.sent = true
			channels[i] = o.e.channel
		}
		h.mu.Unlock()

		write := h.t.Unsubscribe
		if subscribe {
			write = h.t.Subscribe
		}
		if err := write(h.ctx, channels...); err != nil {
			h.mu.Lock()
			for _, o := range batch {
				h.fail(o, err)
			}
			h.mu.Unlock()
		}
	}
}

// fail ends an operation whose command could not be written: no
// confirmation will match it, and its waiters get err. The hub still wants
// what it wanted: a failed subscribe stays the channel's e.sub until its
// subscriptions close (which unsubscribes) or a new Subscribe replaces it,
// and while subscriptions are open it is written again after a backoff
// (see retryLater). Called with h.mu held.
func (h *Hub) fail(o *op, err error) {
	if o.finished {
		return // already ended by Reset or Close
	}
	e := o.e
	e.pending = slices.DeleteFunc(e.pending, func(p *op) bool { return p == o })
	o.finish(err)
	if o.subscribe && e.sub == o && len(e.subs) > 0 && !h.closed {
		h.retryLater(e, o)
	}
	h.tidy(e)
}

// retryLater writes the subscribe of e again after e's backoff, unless by
// then failed (e.sub) was replaced, the hub closed, or every subscription
// of e closed. Without it the subscriptions of a channel whose renewal
// failed (the store dropped it when its slot moved, or its connection was
// lost, and the master was not reachable at once) would get no more
// wake-ups, and their waiters would fall back to re-checking at their
// fallback interval. A Subscribe that failed returns its error at once, as
// before; its caller closes its subscription, which ends the retries.
// Called with h.mu held.
func (h *Hub) retryLater(e *entry, failed *op) {
	d := max(e.backoff, minRetry)
	e.backoff = min(2*d, maxRetry)
	e.stopRetry()
	e.retry = time.AfterFunc(d, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.closed || e.sub != failed || len(e.subs) == 0 || h.entries[e.channel] != e {
			return
		}
		e.retry = nil
		h.renew(e)
	})
}

// renew subscribes e again, as a renewal (see op.renewal). Called with
// h.mu held.
func (h *Hub) renew(e *entry) {
	e.sub = h.enqueue(e, true)
	e.sub.renewal = true
}

// stopRetry stops e's pending retry, if any. Called with h.mu held.
func (e *entry) stopRetry() {
	if e.retry != nil {
		e.retry.Stop()
		e.retry = nil
	}
}

// tidy forgets e once nothing refers to it. Called with h.mu held.
func (h *Hub) tidy(e *entry) {
	if len(e.subs) == 0 && e.sub == nil && len(e.pending) == 0 && h.entries[e.channel] == e {
		delete(h.entries, e.channel)
		if h.byName[e.name] == e {
			delete(h.byName, e.name)
		}
	}
}

// finish ends o with err (nil: confirmed). Called with h.mu held.
func (o *op) finish(err error) {
	if o.finished {
		return
	}
	o.finished = true
	if o.done != nil {
		o.err = err
		close(o.done)
	}
}

// wakeAll signals every subscription of e. Called with h.mu held.
func (e *entry) wakeAll() {
	for s := range e.subs {
		s.signal()
	}
}

// subscription implements driver.Subscription.
type subscription struct {
	h      *Hub
	es     []*entry // the channels it listens on
	ticket string
	wake   chan struct{}
	closed bool  // guarded by h.mu
	fence  int64 // guarded by h.mu: the fence of a grant to ticket, 0 before one
}

var _ driver.Subscription = (*subscription)(nil)

// Granted reports the fencing token of a grant of the lock to the
// subscription's ticket, once one arrived.
func (s *subscription) Granted() (int64, bool) {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	return s.fence, s.fence > 0
}

// Wake is signalled, coalesced, for every message addressed to the ticket
// or broadcast to the channel, after a reconnect, and when the Hub closes.
func (s *subscription) Wake() <-chan struct{} { return s.wake }

// Close drops the subscription; the last one of a channel unsubscribes it
// in the store (asynchronously: Close never blocks on the store). Close is
// idempotent and safe for concurrent use; Wake is not signalled after it.
func (s *subscription) Close() {
	h := s.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	for _, e := range s.es {
		h.leave(e, s)
	}
}

// leave drops s from e; the last subscription of e unsubscribes it, after
// the linger. Called with h.mu held.
func (h *Hub) leave(e *entry, s *subscription) {
	delete(e.subs, s)
	if len(e.subs) > 0 {
		return
	}
	if h.linger > 0 && !h.closed && e.sub != nil && e.sub.finished && e.sub.err == nil {
		// Linger: a contended name is waited on again soon.
		if e.idle == nil {
			e.idle = time.AfterFunc(h.linger, func() {
				h.mu.Lock()
				defer h.mu.Unlock()
				if !h.closed && len(e.subs) == 0 && e.idle != nil {
					e.idle = nil
					h.unsubscribeIdle(e)
				}
			})
		}
		return
	}
	h.unsubscribeIdle(e)
}

// signal wakes s without blocking. Called with h.mu held.
func (s *subscription) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}
