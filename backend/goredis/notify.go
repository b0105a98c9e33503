package goredis

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/disgolock/disgo/internal/notifyhub"
	"github.com/disgolock/disgo/locker/driver"
)

const (
	// pingInterval is how long the pub/sub connection may be silent before
	// it is probed with a PING.
	pingInterval = 3 * time.Second
	// Backoff of the receive loop while the server cannot be reached.
	minBackoff = 10 * time.Millisecond
	maxBackoff = time.Second
)

// errClosed is what writes to the pub/sub connection fail with after Close.
var errClosed = errors.New("goredis: store closed")

// Subscribe implements driver.Notifier: it returns once the server
// confirmed the subscription of name's channel on the Store's shared
// pub/sub connection (made on first use). Waiters of one name share one
// server subscription; the last Close of a name unsubscribes it. On ctx
// cancellation it returns an error wrapping ctx.Err() and holds nothing;
// when the connection fails, the error; after Store.Close, an error.
//
// Cluster: on a *redis.ClusterClient with sharded pub/sub (the default) a
// shard channel can only be subscribed on the master that owns its slot,
// so the Store keeps one pub/sub connection per master node, shared by
// every name whose slot that node serves, and subscribes each channel on
// the connection to its slot's current owner. When a slot moves, the old
// owner ends its subscriptions and the Store subscribes them again on the
// new one, waking their waiters (they may have missed a message). With
// Options.ClassicPubSub one connection to any node serves every name.
func (s *Store) Subscribe(ctx context.Context, name, ticket string) (driver.Subscription, error) {
	return s.hub.Subscribe(ctx, name, ticket)
}

// SubscribeActive implements driver.Notifier: it subscribes without
// a round trip when the channel of name is subscribed already (by other
// waiters, or lingering after recent ones), and returns false otherwise.
func (s *Store) SubscribeActive(name, ticket string) (driver.Subscription, bool) {
	return s.hub.SubscribeActive(name, ticket)
}

// ActiveSubscriptions returns the number of lock names whose channel the
// Store holds (or is setting up) a server subscription for.
func (s *Store) ActiveSubscriptions() int { return s.hub.ActiveSubscriptions() }

// conn is one go-redis pub/sub connection, the Transport of a hub, on a
// standalone server, or on any node of a Cluster for classic pub/sub. Its
// receive loop feeds the hub what the server sends.
type conn struct {
	client  redis.UniversalClient
	classic bool
	hub     *notifyhub.Hub

	mu     sync.Mutex
	ps     *redis.PubSub // nil until the first subscription
	closed bool
	stop   chan struct{} // closed by close
	loop   sync.WaitGroup
}

// newConn returns the hub of a new conn and the function that closes both.
func newConn(client redis.UniversalClient, classic bool, channel func(name string) string) (*notifyhub.Hub, func() error) {
	c := &conn{client: client, classic: classic, stop: make(chan struct{})}
	c.hub = notifyhub.New(c, channel)
	return c.hub, c.close
}

// pubsub returns the connection, creating it and starting its receive loop
// on first use.
func (c *conn) pubsub(ctx context.Context) (*redis.PubSub, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errClosed
	}
	if c.ps == nil {
		// Without channels neither call touches the network.
		if c.classic {
			c.ps = c.client.Subscribe(ctx)
		} else {
			c.ps = c.client.SSubscribe(ctx)
		}
		c.loop.Add(1)
		go c.receive(c.ps)
	}
	return c.ps, nil
}

// Subscribe implements notifyhub.Transport.
func (c *conn) Subscribe(ctx context.Context, channels ...string) error {
	ps, err := c.pubsub(ctx)
	if err != nil {
		return err
	}
	if c.classic {
		return ps.Subscribe(ctx, channels...)
	}
	return ps.SSubscribe(ctx, channels...)
}

// Unsubscribe implements notifyhub.Transport.
func (c *conn) Unsubscribe(ctx context.Context, channels ...string) error {
	ps, err := c.pubsub(ctx)
	if err != nil {
		return err
	}
	if c.classic {
		return ps.Unsubscribe(ctx, channels...)
	}
	return ps.SUnsubscribe(ctx, channels...)
}

// receive reads the connection until it is closed. go-redis reconnects by
// itself after a read error and resubscribes every channel; the loop tells
// the hub once per outage (Reset), and the resubscribe confirmations then
// wake the waiters of each channel again when it is back.
func (c *conn) receive(ps *redis.PubSub) {
	defer c.loop.Done()
	ctx := context.Background() // a cancelled context would make go-redis drop the connection
	backoff := minBackoff
	healthy := true
	for {
		msg, err := ps.ReceiveTimeout(ctx, pingInterval)
		var netErr net.Error
		switch {
		case err == nil:
			healthy, backoff = true, minBackoff
			deliver(c.hub, msg)
			continue
		case errors.Is(err, redis.ErrClosed):
			return
		case errors.As(err, &netErr) && netErr.Timeout():
			// Idle: probe. The pong arrives as a message; a failed write
			// makes go-redis reconnect.
			_ = ps.Ping(ctx)
			continue
		}
		if healthy {
			healthy = false
			c.hub.Reset()
		}
		select {
		case <-c.stop:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// deliver hands one thing a pub/sub connection read to hub.
func deliver(hub *notifyhub.Hub, msg any) {
	switch m := msg.(type) {
	case *redis.Message:
		hub.Message(m.Channel, m.Payload)
	case *redis.Subscription:
		switch m.Kind {
		case "subscribe", "ssubscribe":
			hub.Confirmed(m.Channel, true)
		case "unsubscribe", "sunsubscribe":
			hub.Confirmed(m.Channel, false)
		}
	}
}

// close closes the hub and the connection and waits for the receive loop.
func (c *conn) close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	close(c.stop)
	ps := c.ps
	c.mu.Unlock()

	c.hub.Close()
	var err error
	if ps != nil {
		err = ps.Close()
	}
	c.loop.Wait()
	return err
}
