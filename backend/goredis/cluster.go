package goredis

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/disgolock/disgo/internal/notifyhub"
)

// shards is the Transport of a hub for sharded pub/sub on Redis Cluster. A
// shard channel can only be subscribed on the master that owns its slot, so
// there is one pub/sub connection per master node, shared by every channel
// whose slot it serves, and each channel is (un)subscribed by a command of
// its own, since Redis rejects an SSUBSCRIBE whose channels span slots.
//
// A connection that fails is not left to go-redis to restore: its reconnect
// resubscribes all the channels of the connection in one command, which the
// cluster rejects as cross-slot. The connection is closed instead, and
// after a backoff its channels are routed again, each to the current owner
// of its slot. The same happens when a node answers a subscription with an
// error (MOVED after a slot moved), which also makes the client reload the
// slot map.
type shards struct {
	client *redis.ClusterClient
	hub    *notifyhub.Hub

	mu     sync.Mutex
	closed bool
	stop   chan struct{}     // closed by close
	nodes  map[string]*shard // by node address
	where  map[string]*shard // channel → the shard it was subscribed on
	loops  sync.WaitGroup
}

// shard is the pub/sub connection to one master node, made on first use
// and again after a failure. Its fields are guarded by shards.mu.
type shard struct {
	ps      *redis.PubSub // nil while there is none
	backoff time.Duration // wait before the channels of a failed connection are routed again
}

// newShards returns the hub of a new shards and the function that closes
// both.
func newShards(client *redis.ClusterClient, channel func(name string) string) (*notifyhub.Hub, func() error) {
	s := &shards{
		client: client,
		stop:   make(chan struct{}),
		nodes:  make(map[string]*shard),
		where:  make(map[string]*shard),
	}
	s.hub = notifyhub.New(s, channel)
	return s.hub, s.close
}

// Subscribe implements notifyhub.Transport: one SSUBSCRIBE per channel, on
// the connection to the master of its slot.
func (s *shards) Subscribe(ctx context.Context, channels ...string) error {
	for _, ch := range channels {
		ps, err := s.route(ctx, ch)
		if err != nil {
			return err
		}
		if err := ps.SSubscribe(ctx, ch); err != nil {
			// The connection's state is unknown: closing it makes its
			// receive loop route its channels again.
			_ = ps.Close()
			return err
		}
	}
	return nil
}

// Unsubscribe implements notifyhub.Transport: one SUNSUBSCRIBE per channel,
// on the connection it was subscribed on. A channel no live connection
// holds (its connection failed) is unsubscribed already; the hub is told so
// at once, since no server will confirm it.
func (s *shards) Unsubscribe(ctx context.Context, channels ...string) error {
	type write struct {
		ps *redis.PubSub
		ch string
	}
	var writes []write
	var gone []string
	s.mu.Lock()
	for _, ch := range channels {
		if sh := s.where[ch]; sh != nil {
			writes = append(writes, write{sh.ps, ch})
		} else {
			gone = append(gone, ch)
		}
		delete(s.where, ch)
	}
	s.mu.Unlock()
	for _, ch := range gone {
		s.hub.Confirmed(ch, false)
	}
	for _, w := range writes {
		if err := w.ps.SUnsubscribe(ctx, w.ch); err != nil {
			_ = w.ps.Close()
			return err
		}
	}
	return nil
}

// route returns the connection to the master that serves ch's slot,
// making it if there is none, and records ch on it.
func (s *shards) route(ctx context.Context, ch string) (*redis.PubSub, error) {
	node, err := s.client.MasterForKey(ctx, ch)
	if err != nil {
		return nil, err
	}
	addr := node.Options().Addr
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errClosed
	}
	sh := s.nodes[addr]
	if sh == nil {
		sh = &shard{backoff: minBackoff}
		s.nodes[addr] = sh
	}
	if sh.ps == nil {
		// Without channels this does not touch the network.
		sh.ps = node.SSubscribe(context.Background())
		s.loops.Add(1)
		go s.receive(sh, sh.ps)
	}
	s.where[ch] = sh
	return sh.ps, nil
}

// receive reads one connection of sh until it fails or is closed, then
// hands its channels back to the hub, which subscribes again those still
// wanted (through route, so on the current owner of each slot).
func (s *shards) receive(sh *shard, ps *redis.PubSub) {
	defer s.loops.Done()
	ctx := context.Background() // a cancelled context would make go-redis drop the connection
	start := time.Now()
	for done := false; !done; {
		msg, err := ps.ReceiveTimeout(ctx, pingInterval)
		var netErr net.Error
		var replyErr redis.Error
		switch {
		case err == nil:
			deliver(s.hub, msg)
		case errors.As(err, &netErr) && netErr.Timeout():
			// Idle: probe. The pong arrives as a message.
			_ = ps.Ping(ctx)
		case errors.As(err, &replyErr):
			// MOVED (the slot map changed) or CROSSSLOT (go-redis
			// resubscribed after a reconnect).
			s.client.ReloadState(ctx)
			done = true
		default: // closed, or the connection failed
			done = true
		}
	}
	_ = ps.Close()

	s.mu.Lock()
	sh.ps = nil
	var lost []string
	for ch, at := range s.where {
		if at == sh {
			lost = append(lost, ch)
			delete(s.where, ch)
		}
	}
	if time.Since(start) > maxBackoff {
		sh.backoff = minBackoff // it was healthy for a while
	}
	wait := sh.backoff
	sh.backoff = min(2*wait, maxBackoff)
	closed := s.closed
	s.mu.Unlock()
	if closed || len(lost) == 0 {
		return
	}
	select {
	case <-s.stop:
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

// close closes the hub and every connection and waits for the receive
// loops.
func (s *shards) close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.stop)
	var open []*redis.PubSub
	for _, sh := range s.nodes {
		if sh.ps != nil {
			open = append(open, sh.ps)
		}
	}
	s.mu.Unlock()

	s.hub.Close()
	var err error
	for _, ps := range open {
		if cerr := ps.Close(); cerr != nil && !errors.Is(cerr, redis.ErrClosed) && err == nil {
			err = cerr
		}
	}
	s.loops.Wait()
	return err
}
