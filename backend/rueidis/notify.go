package rueidisbackend

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/disgolock/disgo/internal/notifyhub"
	"github.com/disgolock/disgo/locker/driver"
)

const (
	// writeTimeout bounds one (un)subscribe command on the pub/sub
	// connection; a command that times out makes the Store reconnect.
	writeTimeout = 5 * time.Second
	// Backoff of reconnection attempts while the server cannot be reached.
	minBackoff = 10 * time.Millisecond
	maxBackoff = time.Second
)

var (
	// errClosed is what writes to the pub/sub connection fail with after
	// Close.
	errClosed = errors.New("rueidisbackend: store closed")
	// errNoConnection is what writes fail with while the connection is
	// being restored, and unsubscribing without a connection.
	errNoConnection = errors.New("rueidisbackend: no pub/sub connection")
)

// Subscribe implements driver.Notifier: it returns once the server
// confirmed the subscription of name's channel. Waiters of one name share
// one server subscription; the last Close of a name unsubscribes it (after
// a short linger, see notifyhub.DefaultLinger). On ctx cancellation it
// returns an error wrapping ctx.Err() and holds nothing; when the
// connection cannot be made or is being restored, or the server refuses the
// subscription, an error; after Store.Close, an error.
//
// On a standalone server, and on Cluster with Options.ClassicPubSub, every
// channel shares one dedicated connection of the client, made on first
// use. When it breaks (rueidis' keepalive PING, paced by
// ClientOption.ConnWriteTimeout, also finds a silent one), the Store
// reconnects in the background, subscribes every channel that still has
// waiters again and then wakes every subscription, since messages may have
// been lost meanwhile. Subscribe fails at once while it reconnects.
//
// On Cluster with sharded pub/sub (the default), a channel can only be
// subscribed on the master that serves its slot: the Store keeps one
// dedicated connection per master, shared by every channel of that master,
// and writes one SSUBSCRIBE per slot. When a connection breaks, its
// channels' waiters are woken and the channels still wanted are subscribed
// again, each on the current master of its slot; the same happens when a
// master drops channels of a slot that moved to another master.
func (s *Store) Subscribe(ctx context.Context, name, ticket string) (driver.Subscription, error) {
	return s.hub.Subscribe(ctx, name, ticket)
}

// SubscribeActive implements driver.Notifier: it subscribes
// without a round trip when name's channel is subscribed and confirmed
// already (by other waiters of this Store, or lingering after recent ones),
// and returns false, holding nothing, otherwise.
func (s *Store) SubscribeActive(name, ticket string) (driver.Subscription, bool) {
	return s.hub.SubscribeActive(name, ticket)
}

// ActiveSubscriptions returns the number of lock names whose channel the
// Store holds (or is setting up) a server subscription for, including
// those that linger for a moment after their last waiter left.
func (s *Store) ActiveSubscriptions() int { return s.hub.ActiveSubscriptions() }

// pubsub is the Store's pub/sub connection: a rueidis dedicated connection
// with pub/sub hooks, made on first use and remade after it breaks. It is
// the hub's Transport, and its hooks feed the hub what the server sends.
type pubsub struct {
	client  rueidis.Client
	classic bool
	hub     *notifyhub.Hub
	ctx     context.Context // of reconnections; cancelled by close
	cancel  context.CancelFunc
	wg      sync.WaitGroup // watch and reconnect goroutines

	// mu is held while a command is written, so that the connection, the
	// channel set and what the server has subscribed change together.
	mu sync.Mutex
	dc rueidis.DedicatedClient // nil while not connected
	// lost is set while a broken connection awaits its reconnection, which
	// only the reconnect goroutine makes.
	lost bool
	// channels are those the hub last asked to subscribe and not to
	// unsubscribe since: what a new connection subscribes.
	channels map[string]struct{}
	closed   bool
}

func newPubSub(client rueidis.Client, classic bool, channel func(name string) string) *pubsub {
	ctx, cancel := context.WithCancel(context.Background())
	c := &pubsub{client: client, classic: classic, ctx: ctx, cancel: cancel, channels: make(map[string]struct{})}
	c.hub = notifyhub.New(c, channel)
	return c
}

// Subscribe implements notifyhub.Transport. The first call connects.
func (c *pubsub) Subscribe(ctx context.Context, channels ...string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return errClosed
	case c.lost:
		return errNoConnection
	}
	for _, ch := range channels {
		c.channels[ch] = struct{}{}
	}
	var err error
	if c.dc == nil {
		err = c.dial(ctx) // the first connection, or the first since an idle one broke
	} else if err = c.write(ctx, c.dc, true, channels); fatal(err) {
		c.drop(c.dc)
	}
	if err != nil {
		// Not subscribed: refused by the server, or not on a connection
		// that is kept.
		for _, ch := range channels {
			delete(c.channels, ch)
		}
	}
	return err
}

// Unsubscribe implements notifyhub.Transport.
func (c *pubsub) Unsubscribe(ctx context.Context, channels ...string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ch := range channels {
		delete(c.channels, ch)
	}
	switch {
	case c.closed:
		return errClosed
	case c.dc == nil:
		return errNoConnection // nothing holds the channels
	}
	err := c.write(ctx, c.dc, false, channels)
	if fatal(err) {
		c.drop(c.dc)
	}
	return err
}

// dial makes a dedicated connection with the hooks, subscribes every
// channel of c.channels on it (there is at least one), makes it the
// connection and starts its watch goroutine. Called with c.mu held.
func (c *pubsub) dial(ctx context.Context) error {
	dc, _ := c.client.Dedicate() // dc.Close returns the connection to the client
	broken := dc.SetPubSubHooks(hooks(c.hub))
	if err := c.write(ctx, dc, true, slices.Sorted(maps.Keys(c.channels))); err != nil {
		dc.Close()
		return err
	}
	c.dc = dc
	c.wg.Add(1)
	go c.watch(dc, broken)
	return nil
}

// hooks feed what a pub/sub connection receives to hub. They run on the
// connection's reading goroutine and never block.
func hooks(hub *notifyhub.Hub) rueidis.PubSubHooks {
	return rueidis.PubSubHooks{
		OnMessage: func(m rueidis.PubSubMessage) { hub.Message(m.Channel, m.Message) },
		OnSubscription: func(s rueidis.PubSubSubscription) {
			switch s.Kind {
			case "subscribe", "ssubscribe":
				hub.Confirmed(s.Channel, true)
			case "unsubscribe", "sunsubscribe":
				hub.Confirmed(s.Channel, false)
			}
		},
	}
}

// write sends one (un)subscribe command of channels on dc and returns once
// the server answered the first of them. Called with c.mu held.
func (c *pubsub) write(ctx context.Context, dc rueidis.DedicatedClient, subscribe bool, channels []string) error {
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	var cmd rueidis.Completed
	switch {
	case subscribe && c.classic:
		cmd = dc.B().Subscribe().Channel(channels...).Build()
	case subscribe:
		cmd = dc.B().Ssubscribe().Channel(channels...).Build()
	case c.classic:
		cmd = dc.B().Unsubscribe().Channel(channels...).Build()
	default:
		cmd = dc.B().Sunsubscribe().Channel(channels...).Build()
	}
	return dc.Do(ctx, cmd).Error()
}

// fatal reports a write failure that leaves the connection in an unknown
// state (as opposed to a refusal by the server).
func fatal(err error) bool {
	_, refused := rueidis.IsRedisErr(err)
	return err != nil && !refused
}

// watch waits until dc breaks or is closed, then drops it.
func (c *pubsub) watch(dc rueidis.DedicatedClient, broken <-chan error) {
	defer c.wg.Done()
	for range broken { // closed once the hooks are no longer called
	}
	c.mu.Lock()
	c.drop(dc)
	c.mu.Unlock()
}

// drop gives up dc if it is still the connection and starts reconnecting.
// Called with c.mu held.
func (c *pubsub) drop(dc rueidis.DedicatedClient) {
	if c.dc != dc || c.closed {
		return
	}
	c.dc, c.lost = nil, true
	c.wg.Add(1)
	go c.reconnect(dc)
}

// reconnect closes the broken connection, then subscribes every wanted
// channel on a new one and tells the hub, which wakes every subscription:
// messages may have been lost. Without wanted channels it only tells the
// hub, and the next Subscribe connects.
func (c *pubsub) reconnect(old rueidis.DedicatedClient) {
	defer c.wg.Done()
	old.Close()
	backoff := minBackoff
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return
		}
		var err error
		if len(c.channels) > 0 {
			err = c.dial(c.ctx)
		}
		if err == nil {
			c.lost = false
			c.hub.Reset()
		}
		c.mu.Unlock()
		if err == nil {
			return
		}
		select {
		case <-c.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// close closes the hub and the connection and waits for the goroutines.
func (c *pubsub) close() {
	c.cancel()
	c.hub.Close() // cancels and waits for the hub's writes
	c.mu.Lock()
	c.closed = true
	dc := c.dc
	c.dc = nil
	c.mu.Unlock()
	if dc != nil {
		dc.Close()
	}
	c.wg.Wait()
}
