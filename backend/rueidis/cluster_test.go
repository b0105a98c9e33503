package rueidisbackend_test

import (
	"context"
	"crypto/tls"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	rueidisbackend "github.com/disgolock/disgo/backend/rueidis"
	"github.com/disgolock/disgo/internal/redistest"
	"github.com/disgolock/disgo/internal/storetest"
	"github.com/disgolock/disgo/internal/tcpproxy"
	"github.com/disgolock/disgo/internal/token"
	"github.com/disgolock/disgo/locker/driver"
)

// TestCluster runs the conformance suite, the interoperability tests and
// the cluster tests of package storetest on one cluster of three masters,
// which its subtests share (they use names or prefixes of their own).
func TestCluster(t *testing.T) {
	c := redistest.StartCluster(t, 3)
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
	storetest.RunCluster(t, c, storetest.ClusterHarness{
		Open: func(t *testing.T, c *redistest.Cluster, name string, opts storetest.Options) storetest.RedisStore {
			cc, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: c.Addrs, ClientName: name})
			require.NoError(t, err)
			t.Cleanup(cc.Close)
			s, err := rueidisbackend.New(cc, rueidisbackend.Options{Prefix: opts.Prefix, ClassicPubSub: opts.ClassicPubSub})
			require.NoError(t, err)
			t.Cleanup(func() { assert.NoError(t, s.Close()) })
			return s
		},
		Node: func(t *testing.T, addr string) storetest.Do {
			n, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, ForceSingleClient: true})
			require.NoError(t, err)
			t.Cleanup(n.Close)
			return func(ctx context.Context, args ...string) (any, error) {
				return n.Do(ctx, n.B().Arbitrary(args...).Build()).ToAny()
			}
		},
		RefusalFailsSubscribe: true,
	})
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

// patience bounds every wait of these tests; reaching it is a failure.
const patience = 10 * time.Second

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	t.Cleanup(cancel)
	return ctx
}

func req(name, owner string) driver.AcquireRequest {
	return driver.AcquireRequest{Name: name, Owner: owner, Ticket: token.New(), Lease: time.Minute}
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
