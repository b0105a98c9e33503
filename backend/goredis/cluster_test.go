package goredis_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/backend/goredis"
	"github.com/disgolock/disgo/internal/redistest"
	"github.com/disgolock/disgo/internal/storetest"
	"github.com/disgolock/disgo/internal/tcpproxy"
)

// TestCluster runs the conformance suite and the cluster tests of
// package storetest on one cluster of three masters, which its subtests
// share (they use names or prefixes of their own).
func TestCluster(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	t.Run("Conformance", func(t *testing.T) {
		admin := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs, ContextTimeoutEnabled: true, DialTimeout: time.Second})
		t.Cleanup(func() { _ = admin.Close() })
		runConformance(t, admin, func(t testing.TB) harnessClient {
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
	storetest.RunCluster(t, c, storetest.ClusterHarness{
		Open: func(t *testing.T, c *redistest.Cluster, name string, opts storetest.Options) storetest.RedisStore {
			cc := redis.NewClusterClient(&redis.ClusterOptions{
				Addrs: c.Addrs, ClientName: name, ContextTimeoutEnabled: true, DialTimeout: time.Second,
			})
			t.Cleanup(func() { _ = cc.Close() })
			s, err := goredis.New(cc, goredis.Options{Prefix: opts.Prefix, ClassicPubSub: opts.ClassicPubSub})
			require.NoError(t, err)
			t.Cleanup(func() { assert.NoError(t, s.Close()) })
			return s
		},
		Node: func(t *testing.T, addr string) storetest.Do {
			n := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true, DialTimeout: time.Second})
			t.Cleanup(func() { _ = n.Close() })
			return func(ctx context.Context, args ...string) (any, error) {
				a := make([]any, len(args))
				for i, arg := range args {
					a[i] = arg
				}
				return n.Do(ctx, a...).Result()
			}
		},
	})
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
