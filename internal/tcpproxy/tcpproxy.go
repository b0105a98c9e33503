// Package tcpproxy is a TCP proxy for tests: it listens on a free loopback
// port, forwards every connection it accepts to one target address, and
// can stall, delay, partition and close those connections on demand or at
// random, without ever corrupting a byte stream.
//
// What it does to the traffic:
//
//   - [Proxy.Pause] stops delivering in both directions on every
//     connection, existing and new, while it keeps reading and holds the
//     bytes: the connections stay open, as with a process that was stopped
//     or a network that stalls. [Proxy.Resume] delivers everything held in
//     the global order in which it arrived, across all connections, then
//     forwards normally.
//   - [Proxy.SetFaults] turns on random faults, drawn per chunk (one read
//     of a socket): added latency with jitter, an abrupt close of the
//     connection pair (possibly after delivering only part of the chunk, so
//     that a request can reach the server and its reply be lost), and a
//     blackhole (a partition of one connection pair: nothing is delivered
//     for a while, then everything is, in order).
//   - [Proxy.CloseConns] closes every current connection at once.
//
// Bytes are never dropped from the middle of a live connection, reordered
// within one direction of a connection, or altered: a connection either
// delivers its stream in order, or is closed after a prefix of it.
package tcpproxy

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"testing"
	"time"
)

// Faults are the random faults of a [Proxy], drawn per chunk (one read of
// a socket, at most chunkSize bytes) from the proxy's seeded source. The
// zero value forwards everything at once.
type Faults struct {
	// Delay is added to the delivery of every chunk, plus a uniform random
	// Jitter in [0, Jitter). Chunks of one direction of a connection are
	// never reordered: a chunk is delivered no earlier than the one before.
	Delay  time.Duration
	Jitter time.Duration

	// CloseProb is the chance per chunk that the connection pair is closed
	// abruptly (RST on both sides) when that chunk is due: either after the
	// whole chunk was delivered (a request reaches the server, its reply is
	// lost), or after a random prefix of it (the receiver sees a truncated
	// stream, then the close), half the time each.
	CloseProb float64

	// BlackholeProb is the chance per chunk that the connection pair stops
	// delivering, in both directions, for BlackholeFor (default 500ms),
	// starting with that chunk. The connection stays open and nothing is
	// lost: after the blackhole everything held is delivered in order.
	BlackholeProb float64
	BlackholeFor  time.Duration

	// Seed, when not zero, reseeds the random source (see [Proxy.Seed]).
	Seed uint64
}

// Stats count what a [Proxy] did.
type Stats struct {
	Conns      int // connection pairs accepted
	Open       int // connection pairs open now
	Chunks     int // chunks read, both directions
	Bytes      int // bytes read, both directions
	Closes     int // pairs closed by a CloseProb fault
	Blackholes int // blackholes started by a BlackholeProb fault
}

// Dir is the direction of a chunk.
type Dir int

const (
	ToServer Dir = iota // from the accepted (client) side to the target
	ToClient            // from the target back to the client
)

func (d Dir) String() string {
	if d == ToServer {
		return "to-server"
	}
	return "to-client"
}

// Delivery describes one chunk written to its destination, for
// [Proxy.SetTrace].
type Delivery struct {
	Conn int    // the pair's number, from 1 in order of acceptance
	Dir  Dir    // direction
	Seq  uint64 // global order of arrival at the proxy, from 1
	Data []byte // what was written (a prefix of the chunk when cut); do not keep
}

const (
	chunkSize        = 32 << 10
	dialTimeout      = 2 * time.Second
	writeTimeout     = 10 * time.Second // bounds every write, so that no goroutine hangs on a receiver that stopped reading
	defaultBlackhole = 500 * time.Millisecond
	closeGrace       = 3 * time.Millisecond // see deliver
)

// Proxy is a TCP proxy in front of one target address. Its methods are
// safe for concurrent use.
type Proxy struct {
	target string
	ln     net.Listener
	wg     sync.WaitGroup
	ctl    sync.Mutex // serializes Pause, Resume and Close

	mu       sync.Mutex
	cond     *sync.Cond    // on mu: queues, pause state, pairs or inflight changed
	kick     chan struct{} // closed (and replaced) to wake writers sleeping on a timer
	rng      *rand.Rand
	seed     uint64
	faults   Faults
	paused   bool
	flushing bool // Resume is delivering what was held: writers wait
	closed   bool
	seq      uint64
	inflight int // deliveries in progress outside mu
	pairs    map[*pair]struct{}
	nextID   int
	trace    func(Delivery)
	stats    Stats
}

// pair is one accepted connection and its connection to the target.
type pair struct {
	id             int
	client, server net.Conn
	dirs           [2]*direction
	done           chan struct{} // closed by shut
	closed         bool          // under Proxy.mu
	doomed         bool          // under Proxy.mu: a close fault is being carried out, deliver nothing more
	blackholeUntil time.Time     // under Proxy.mu
}

// direction is one way of a pair: what was read from src and waits to be
// written to dst.
type direction struct {
	pair     *pair
	dir      Dir
	src, dst net.Conn
	queue    []*chunk  // under Proxy.mu
	lastDue  time.Time // under Proxy.mu: due time of the last chunk queued
	finished bool      // under Proxy.mu: src ended cleanly and dst was half-closed
}

// chunk is one read of a socket, or the end of the stream (eof).
type chunk struct {
	seq  uint64
	d    *direction
	data []byte
	eof  bool  // the source ended; err says how
	err  error // with eof: io.EOF for a clean end
	due  time.Time
	cut  int // -1: deliver all; otherwise deliver data[:cut], then close the pair abruptly
}

// New starts a proxy in front of target on a free 127.0.0.1 port. Close
// stops it and waits for all of its goroutines.
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("tcpproxy: listen: %w", err)
	}
	seed := rand.Uint64()
	p := &Proxy{
		target: target,
		ln:     ln,
		kick:   make(chan struct{}),
		rng:    rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		seed:   seed,
		pairs:  make(map[*pair]struct{}),
	}
	p.cond = sync.NewCond(&p.mu)
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Start is New for a test: it fails the test on error and closes the proxy
// in t.Cleanup.
func Start(t testing.TB, target string) *Proxy {
	t.Helper()
	p, err := New(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// Addr returns the address the proxy listens on ("127.0.0.1:port").
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Target returns the address the proxy forwards to.
func (p *Proxy) Target() string { return p.target }

// Seed returns the seed of the random source, for a test to log so that a
// run's fault decisions can be repeated with Faults.Seed (chunk boundaries
// still depend on timing).
func (p *Proxy) Seed() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seed
}

// SetFaults sets the random faults of every chunk read from now on. A
// blackhole in progress runs its course; see [Proxy.Heal].
func (p *Proxy) SetFaults(f Faults) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if f.Seed != 0 {
		p.seed = f.Seed
		p.rng = rand.New(rand.NewPCG(f.Seed, f.Seed^0x9e3779b97f4a7c15))
	}
	if f.BlackholeFor <= 0 {
		f.BlackholeFor = defaultBlackhole
	}
	p.faults = f
}

// Heal turns the random faults off and ends every blackhole at once.
// Chunks already delayed are delivered when due.
func (p *Proxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = Faults{}
	for pr := range p.pairs {
		pr.blackholeUntil = time.Time{}
	}
	p.wakeLocked()
}

// SetTrace makes the proxy call f after each chunk was written to its
// destination, in delivery order (f must not call the proxy). Nil stops it.
func (p *Proxy) SetTrace(f func(Delivery)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.trace = f
}

// Stats returns the counters.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.Open = len(p.pairs)
	return s
}

// Pause stops delivering in both directions on every connection, existing
// and new, until Resume. The proxy keeps accepting and reading, and holds
// what it read; the connections stay open. When Pause returns, no delivery
// is in progress and none starts until Resume.
func (p *Proxy) Pause() {
	p.ctl.Lock()
	defer p.ctl.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.paused = true
	p.wakeLocked()
	for p.inflight > 0 {
		p.cond.Wait()
	}
}

// Paused reports whether the proxy is paused.
func (p *Proxy) Paused() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.paused
}

// Resume delivers everything held, in the global order in which it arrived
// at the proxy across all connections (delays and blackholes of the held
// chunks are skipped), then forwards normally. It returns once the held
// chunks were written. Resuming a proxy that is not paused does nothing.
func (p *Proxy) Resume() {
	p.ResumeWithGap(0)
}

// Stall pauses every proxy of proxies, as a process pause stalls every
// connection of a client at once, and returns the function that resumes
// them (with a 2 ms gap, see ResumeWithGap): what they held is delivered in
// the order it arrived. The resume function may be called more than once,
// from any goroutine; only the first call acts. It is the Stall hook of
// the conformance harnesses.
func Stall(proxies ...*Proxy) (resume func()) {
	for _, p := range proxies {
		p.Pause()
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			for _, p := range proxies {
				p.ResumeWithGap(2 * time.Millisecond)
			}
		})
	}
}

// ResumeWithGap is Resume with a pause of gap between held chunks that go
// to different connections, so that receivers reading several connections
// in goroutines of their own also see them in the original order.
func (p *Proxy) ResumeWithGap(gap time.Duration) {
	p.ctl.Lock()
	defer p.ctl.Unlock()
	p.mu.Lock()
	if !p.paused {
		p.mu.Unlock()
		return
	}
	p.paused, p.flushing = false, true
	for p.inflight > 0 { // none: Pause waited for them, and none started since
		p.cond.Wait()
	}
	var held []*chunk
	for pr := range p.pairs {
		for _, d := range pr.dirs {
			held = append(held, d.queue...)
			d.queue = nil
		}
	}
	p.mu.Unlock()

	slices.SortFunc(held, func(a, b *chunk) int {
		switch {
		case a.seq < b.seq:
			return -1
		case a.seq > b.seq:
			return 1
		}
		return 0
	})
	var last *pair
	for _, c := range held {
		if gap > 0 && last != nil && last != c.d.pair {
			time.Sleep(gap)
		}
		last = c.d.pair
		p.deliver(c)
	}

	p.mu.Lock()
	p.flushing = false
	p.wakeLocked()
	p.mu.Unlock()
}

// CloseConns closes every current connection pair at once, both sides,
// abruptly. New connections are accepted as before.
func (p *Proxy) CloseConns() {
	p.mu.Lock()
	pairs := make([]*pair, 0, len(p.pairs))
	for pr := range p.pairs {
		pairs = append(pairs, pr)
	}
	p.mu.Unlock()
	for _, pr := range pairs {
		p.shut(pr, true)
	}
}

// Close stops listening, closes every connection and waits for all of the
// proxy's goroutines. It is idempotent.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.wg.Wait()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	err := p.ln.Close()
	p.CloseConns()
	p.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// wakeLocked (mu held) wakes every writer: those waiting on cond and
// those sleeping until a chunk is due.
func (p *Proxy) wakeLocked() {
	p.cond.Broadcast()
	close(p.kick)
	p.kick = make(chan struct{})
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			p.mu.Lock()
			closed := p.closed
			p.mu.Unlock()
			if closed || errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(5 * time.Millisecond) // e.g. EMFILE: do not spin
			continue
		}
		p.wg.Add(1)
		go p.connect(c)
	}
}

// connect dials the target for the accepted connection c and starts the
// pair's four goroutines.
func (p *Proxy) connect(c net.Conn) {
	defer p.wg.Done()
	s, err := net.DialTimeout("tcp", p.target, dialTimeout)
	if err != nil {
		abort(c)
		return
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		abort(c)
		abort(s)
		return
	}
	p.nextID++
	pr := &pair{id: p.nextID, client: c, server: s, done: make(chan struct{})}
	pr.dirs[ToServer] = &direction{pair: pr, dir: ToServer, src: c, dst: s}
	pr.dirs[ToClient] = &direction{pair: pr, dir: ToClient, src: s, dst: c}
	p.pairs[pr] = struct{}{}
	p.stats.Conns++
	p.wg.Add(4)
	for _, d := range pr.dirs {
		go p.read(d)
		go p.write(d)
	}
	p.mu.Unlock()
}

// read reads d.src into chunks until it ends.
func (p *Proxy) read(d *direction) {
	defer p.wg.Done()
	for {
		buf := make([]byte, chunkSize)
		n, err := d.src.Read(buf)
		if n > 0 {
			p.enqueue(d, buf[:n], nil)
		}
		if err != nil {
			p.enqueue(d, nil, err)
			return
		}
	}
}

// enqueue queues one chunk of d, drawing its faults; err != nil queues the
// end of the stream.
func (p *Proxy) enqueue(d *direction, data []byte, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pr := d.pair
	if pr.closed {
		return
	}
	p.seq++
	now := time.Now()
	c := &chunk{seq: p.seq, d: d, data: data, eof: err != nil, err: err, due: now, cut: -1}
	if !c.eof {
		p.stats.Chunks++
		p.stats.Bytes += len(data)
		f := p.faults
		if f.Delay > 0 || f.Jitter > 0 {
			c.due = now.Add(f.Delay)
			if f.Jitter > 0 {
				c.due = c.due.Add(time.Duration(p.rng.Int64N(int64(f.Jitter))))
			}
		}
		if f.BlackholeProb > 0 && p.rng.Float64() < f.BlackholeProb {
			if until := now.Add(f.BlackholeFor); until.After(pr.blackholeUntil) {
				pr.blackholeUntil = until
			}
			p.stats.Blackholes++
		}
		if f.CloseProb > 0 && p.rng.Float64() < f.CloseProb {
			c.cut = len(data)
			if p.rng.IntN(2) == 0 {
				c.cut = p.rng.IntN(len(data) + 1)
			}
		}
	}
	if c.due.Before(d.lastDue) {
		c.due = d.lastDue
	}
	d.lastDue = c.due
	d.queue = append(d.queue, c)
	p.cond.Broadcast()
}

// write delivers the chunks of d when they are due, unless paused.
func (p *Proxy) write(d *direction) {
	defer p.wg.Done()
	pr := d.pair
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		if pr.closed {
			return
		}
		if p.paused || p.flushing || len(d.queue) == 0 {
			p.cond.Wait()
			continue
		}
		c := d.queue[0]
		due := c.due
		if pr.blackholeUntil.After(due) {
			due = pr.blackholeUntil
		}
		if wait := time.Until(due); wait > 0 {
			kick := p.kick
			p.mu.Unlock()
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-kick:
			case <-pr.done:
			}
			t.Stop()
			p.mu.Lock()
			continue // everything may have changed
		}
		d.queue = d.queue[1:]
		p.inflight++
		p.mu.Unlock()
		p.deliver(c)
		p.mu.Lock()
		p.inflight--
		p.cond.Broadcast()
	}
}

// deliver writes one chunk to its destination, or acts on the end of the
// stream, or on the close fault drawn for it.
func (p *Proxy) deliver(c *chunk) {
	d, pr := c.d, c.d.pair
	p.mu.Lock()
	closed, trace := pr.closed || pr.doomed, p.trace
	p.mu.Unlock()
	if closed {
		return
	}
	if c.eof {
		if !errors.Is(c.err, io.EOF) {
			p.shut(pr, true)
			return
		}
		// A clean end: pass the half-close on; the pair closes when both
		// directions ended.
		if tc, ok := d.dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		p.mu.Lock()
		d.finished = true
		both := pr.dirs[0].finished && pr.dirs[1].finished
		p.mu.Unlock()
		if both {
			p.shut(pr, false)
		}
		return
	}
	data := c.data
	if c.cut >= 0 {
		data = data[:c.cut]
	}
	if len(data) > 0 {
		_ = d.dst.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := d.dst.Write(data); err != nil {
			p.shut(pr, true)
			return
		}
		if trace != nil {
			trace(Delivery{Conn: pr.id, Dir: d.dir, Seq: c.seq, Data: data})
		}
	}
	if c.cut >= 0 {
		p.mu.Lock()
		p.stats.Closes++
		pr.doomed = true
		p.mu.Unlock()
		if c.cut == len(c.data) {
			// Give the receiver a moment to act on the whole chunk (a
			// request reaches the server), while nothing more, its reply
			// in particular, is delivered.
			time.Sleep(closeGrace)
		}
		p.shut(pr, true)
	}
}

// shut closes both sides of pr once; abruptly (RST) when abort is set.
func (p *Proxy) shut(pr *pair, abrupt bool) {
	p.mu.Lock()
	if pr.closed {
		p.mu.Unlock()
		return
	}
	pr.closed = true
	close(pr.done)
	delete(p.pairs, pr)
	for _, d := range pr.dirs {
		d.queue = nil
	}
	p.cond.Broadcast()
	p.mu.Unlock()
	if abrupt {
		abort(pr.client)
		abort(pr.server)
		return
	}
	_ = pr.client.Close()
	_ = pr.server.Close()
}

// abort closes c with a reset instead of an orderly FIN.
func abort(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}
