package memory

import (
	"context"

	"github.com/disgolock/disgo/locker/driver"
)

// lockKind tells the three locks of a name apart: its mutex (the Store and
// Client themselves), its read-write lock and its semaphore (their views).
type lockKind uint8

const (
	mutexLock lockKind = iota
	rwLock
	semLock
)

// topic is what a subscription listens on: the wake-ups of one lock, the
// lock of one kind of one name. The read and write views of a name share
// the topic of its read-write lock.
type topic struct {
	kind lockKind
	name string
}

// subscription is one waiter's interest in wake-ups of one lock.
type subscription struct {
	c      *Client
	topic  topic
	ticket string
	wake   chan struct{} // buffer 1: wake-ups coalesce
	fence  int64         // guarded by Store.mu: fence of a grant to ticket, 0 before one
}

var (
	_ driver.Subscription = (*subscription)(nil)
	_ driver.Notifier     = (*Client)(nil)
	_ driver.Notifier     = (*Store)(nil)
)

// Granted implements driver.Subscription: the fencing token of a grant of the
// lock to the subscription's ticket, once the final release of the holder
// handed it over.
func (sub *subscription) Granted() (int64, bool) {
	s := sub.c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	return sub.fence, sub.fence > 0
}

// deliver signals sub's Wake and records the fence of a grant (fence > 0).
// Called with Store.mu held.
func (sub *subscription) deliver(fence int64) {
	if fence > 0 {
		sub.fence = fence
	}
	select {
	case sub.wake <- struct{}{}:
	default:
	}
}

// SubscribeActive implements driver.Notifier. Subscribing costs no
// round trip here, so it always succeeds, except on a killed client; on a
// stalled client too, as it is local to the process (the messages are held
// back until the client resumes).
func (c *Client) SubscribeActive(name, ticket string) (driver.Subscription, bool) {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.killed {
		return nil, false
	}
	return s.subscribe(c, topic{mutexLock, name}, ticket), true
}

// SubscribeActive implements driver.Notifier on the store's
// default client.
func (s *Store) SubscribeActive(name, ticket string) (driver.Subscription, bool) {
	return s.def.SubscribeActive(name, ticket)
}

// Subscribe implements driver.Notifier: the returned subscription is
// signalled for every wake-up of name addressed to ticket and for every
// broadcast of name, from the moment Subscribe returns. The store counts
// subscriptions per name and client (see ActiveSubscriptions). On a done
// ctx it returns an error wrapping ctx.Err() and holds nothing; on a killed
// client, [ErrKilled].
func (c *Client) Subscribe(ctx context.Context, name, ticket string) (driver.Subscription, error) {
	if _, err := c.begin(ctx); err != nil {
		return nil, err
	}
	s := c.s
	defer s.mu.Unlock()
	return s.subscribe(c, topic{mutexLock, name}, ticket), nil
}

// subscribe registers a subscription of c to the wake-ups of tp. Called
// with s.mu held.
func (s *Store) subscribe(c *Client, tp topic, ticket string) *subscription {
	sub := &subscription{c: c, topic: tp, ticket: ticket, wake: make(chan struct{}, 1)}
	if s.subs[tp] == nil {
		s.subs[tp] = make(map[*subscription]struct{})
	}
	s.subs[tp][sub] = struct{}{}
	c.names[tp]++
	return sub
}

// Wake returns the channel signalled on wake-ups.
func (sub *subscription) Wake() <-chan struct{} { return sub.wake }

// Close stops the subscription; Wake is never signalled after it returns.
// It is idempotent and safe for concurrent use.
func (sub *subscription) Close() {
	s := sub.c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unsubscribe(sub)
}

// unsubscribe removes sub if it is still live, dropping the per-name
// counts that reach zero. Called with s.mu held.
func (s *Store) unsubscribe(sub *subscription) {
	tp := sub.topic
	subs := s.subs[tp]
	if _, ok := subs[sub]; !ok {
		return
	}
	delete(subs, sub)
	if len(subs) == 0 {
		delete(s.subs, tp)
	}
	if sub.c.names[tp]--; sub.c.names[tp] == 0 {
		delete(sub.c.names, tp)
	}
}
