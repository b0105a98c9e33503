package tcpproxy

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// patience bounds every wait of these tests; reaching it is a failure.
const patience = 10 * time.Second

// server is a target that records every message it reads, in the order its
// reads return across all its connections. Messages end with ';'. With
// echo set it writes back what it reads.
type server struct {
	ln   net.Listener
	echo bool
	wg   sync.WaitGroup

	mu    sync.Mutex
	conns []net.Conn
	log   []string            // messages in order of arrival
	by    map[string]net.Conn // message -> the server conn it came on
	raw   map[net.Conn]*bytes.Buffer
	eofs  int
	notes chan struct{}
}

func newServer(t *testing.T, echo bool) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{ln: ln, echo: echo, by: map[string]net.Conn{}, raw: map[net.Conn]*bytes.Buffer{}, notes: make(chan struct{}, 1)}
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(s.close)
	return s
}

func (s *server) addr() string { return s.ln.Addr().String() }

func (s *server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns = append(s.conns, c)
		s.raw[c] = new(bytes.Buffer)
		s.mu.Unlock()
		s.wg.Add(1)
		go s.serve(c)
	}
}

func (s *server) serve(c net.Conn) {
	defer s.wg.Done()
	var pending string
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			s.mu.Lock()
			s.raw[c].Write(buf[:n])
			pending += string(buf[:n])
			for {
				i := strings.IndexByte(pending, ';')
				if i < 0 {
					break
				}
				m := pending[:i]
				pending = pending[i+1:]
				s.log = append(s.log, m)
				s.by[m] = c
			}
			s.mu.Unlock()
			if s.echo {
				if _, err := c.Write(buf[:n]); err != nil {
					return
				}
			}
			s.note()
		}
		if err != nil {
			s.mu.Lock()
			s.eofs++
			s.mu.Unlock()
			s.note()
			return
		}
	}
}

func (s *server) note() {
	select {
	case s.notes <- struct{}{}:
	default:
	}
}

func (s *server) close() {
	_ = s.ln.Close()
	s.mu.Lock()
	for _, c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *server) messages() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

// waitFor waits until cond holds on the server's state.
func (s *server) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(patience)
	for {
		s.mu.Lock()
		ok := cond()
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-s.notes:
		case <-time.After(10 * time.Millisecond):
		case <-deadline:
			t.Fatalf("timed out waiting for %s; server log %q", what, s.messages())
		}
	}
}

func dial(t *testing.T, p *Proxy) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", p.Addr(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func write(t *testing.T, c net.Conn, s string) {
	t.Helper()
	if _, err := c.Write([]byte(s)); err != nil {
		t.Fatalf("write %q: %v", s, err)
	}
}

// readN reads exactly n bytes from c within patience.
func readN(t *testing.T, c net.Conn, n int) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(patience))
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("read %d bytes: %v (got %q)", n, err, b)
	}
	return string(b)
}

// silent asserts that nothing arrives on c for d.
func silent(t *testing.T, c net.Conn, d time.Duration, what string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	b := make([]byte, 1)
	n, err := c.Read(b)
	if n > 0 {
		t.Fatalf("%s: got %q while paused", what, b[:n])
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("%s: want a read timeout, got %v", what, err)
	}
}

// waitChunks waits until the proxy has read at least n chunks.
func waitChunks(t *testing.T, p *Proxy, n int) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for p.Stats().Chunks < n {
		if time.Now().After(deadline) {
			t.Fatalf("proxy read %d chunks, want %d", p.Stats().Chunks, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestForwardsBothWays(t *testing.T) {
	srv := newServer(t, true)
	p := Start(t, srv.addr())
	if !strings.HasPrefix(p.Addr(), "127.0.0.1:") {
		t.Fatalf("Addr = %q, want loopback", p.Addr())
	}
	c := dial(t, p)
	write(t, c, "hello;")
	if got := readN(t, c, 6); got != "hello;" {
		t.Fatalf("echo = %q", got)
	}
	st := p.Stats()
	if st.Conns != 1 || st.Open != 1 || st.Chunks != 2 || st.Bytes != 12 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestPauseHoldsBothDirectionsAndResumeKeepsGlobalOrder(t *testing.T) {
	srv := newServer(t, false)
	p := Start(t, srv.addr())
	var (
		tmu   sync.Mutex
		trace []Delivery
	)
	p.SetTrace(func(d Delivery) {
		tmu.Lock()
		defer tmu.Unlock()
		d.Data = slices.Clone(d.Data)
		trace = append(trace, d)
	})
	a, b, c := dial(t, p), dial(t, p), dial(t, p)
	for _, m := range []struct {
		c net.Conn
		s string
	}{{a, "a0;"}, {b, "b0;"}, {c, "c0;"}} {
		write(t, m.c, m.s)
	}
	srv.waitFor(t, "the first messages", func() bool { return len(srv.log) == 3 })
	srv.mu.Lock()
	sa := srv.by["a0"] // the server's side of a
	srv.mu.Unlock()

	p.Pause()
	if !p.Paused() {
		t.Fatal("Paused() = false after Pause")
	}
	tmu.Lock()
	before := len(trace)
	tmu.Unlock()
	// A new connection while paused is accepted and held too.
	d := dial(t, p)
	srv.waitFor(t, "the new connection", func() bool { return len(srv.conns) == 4 })

	// Arrival order, across connections and directions: each write is read
	// by the proxy before the next one is made.
	type msg struct {
		c      net.Conn // nil: the server writes to sa
		s      string
		toSide string
	}
	order := []msg{{a, "a1;", "s"}, {b, "b1;", "s"}, {nil, "r1;", "c"}, {a, "a2;", "s"}, {d, "d1;", "s"}, {c, "c1;", "s"}, {b, "b2;", "s"}}
	chunks := p.Stats().Chunks
	for _, m := range order {
		if m.c == nil {
			write(t, sa, m.s)
		} else {
			write(t, m.c, m.s)
		}
		chunks++
		waitChunks(t, p, chunks)
	}

	// Nothing is delivered while paused, in either direction.
	time.Sleep(150 * time.Millisecond)
	if got := srv.messages(); len(got) != 3 {
		t.Fatalf("server got %q while paused", got[3:])
	}
	silent(t, a, 100*time.Millisecond, "client a")
	tmu.Lock()
	if len(trace) != before {
		t.Fatalf("deliveries while paused: %+v", trace[before:])
	}
	tmu.Unlock()

	// Resume delivers everything, in the order it arrived.
	p.ResumeWithGap(20 * time.Millisecond)
	if p.Paused() {
		t.Fatal("Paused() = true after Resume")
	}
	if got := readN(t, a, 3); got != "r1;" {
		t.Fatalf("client a got %q, want r1;", got)
	}
	srv.waitFor(t, "the held messages", func() bool { return len(srv.log) == 9 })
	want := []string{"a1", "b1", "a2", "d1", "c1", "b2"}
	if got := srv.messages()[3:]; !slices.Equal(got, want) {
		t.Fatalf("server got %q, want %q", got, want)
	}
	tmu.Lock()
	held := slices.Clone(trace[before:])
	tmu.Unlock()
	var got []string
	for i, dl := range held {
		got = append(got, string(dl.Data))
		if i > 0 && dl.Seq <= held[i-1].Seq {
			t.Fatalf("deliveries out of arrival order: %+v", held)
		}
	}
	var wantAll []string
	for _, m := range order {
		wantAll = append(wantAll, m.s)
	}
	if !slices.Equal(got, wantAll) {
		t.Fatalf("delivery order %q, want %q", got, wantAll)
	}
	if held[2].Dir != ToClient || held[0].Dir != ToServer {
		t.Fatalf("directions: %+v", held)
	}

	// The connections stayed open and forward normally.
	write(t, a, "a3;")
	write(t, sa, "r2;")
	srv.waitFor(t, "a3", func() bool { return len(srv.log) == 10 })
	if got := readN(t, a, 3); got != "r2;" {
		t.Fatalf("client a got %q after resume", got)
	}
	p.Resume() // not paused: nothing happens
}

func TestPauseWaitsForDelayedChunks(t *testing.T) {
	srv := newServer(t, false)
	p := Start(t, srv.addr())
	p.SetFaults(Faults{Delay: 200 * time.Millisecond})
	c := dial(t, p)
	write(t, c, "x1;")
	waitChunks(t, p, 1)
	p.Pause() // x1 is queued but not yet due: it must be held too
	time.Sleep(300 * time.Millisecond)
	if got := srv.messages(); len(got) != 0 {
		t.Fatalf("delivered while paused: %q", got)
	}
	p.SetFaults(Faults{})
	write(t, c, "x2;")
	waitChunks(t, p, 2)
	p.Resume()
	srv.waitFor(t, "x1 and x2", func() bool { return len(srv.log) == 2 })
	if got := srv.messages(); !slices.Equal(got, []string{"x1", "x2"}) {
		t.Fatalf("got %q", got)
	}
}

func TestCloseConnsClosesBothSides(t *testing.T) {
	srv := newServer(t, true)
	p := Start(t, srv.addr())
	a, b := dial(t, p), dial(t, p)
	write(t, a, "a;")
	write(t, b, "b;")
	readN(t, a, 2)
	readN(t, b, 2)
	p.CloseConns()
	for _, c := range []net.Conn{a, b} {
		_ = c.SetReadDeadline(time.Now().Add(patience))
		if n, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatalf("read %d bytes after CloseConns", n)
		}
	}
	srv.waitFor(t, "the server sides to close", func() bool { return srv.eofs == 2 })
	if st := p.Stats(); st.Open != 0 {
		t.Fatalf("open pairs after CloseConns: %+v", st)
	}
	c := dial(t, p)
	write(t, c, "c;")
	if got := readN(t, c, 2); got != "c;" {
		t.Fatalf("new connection after CloseConns: %q", got)
	}
}

func TestCloseFaultDeliversAPrefixThenCloses(t *testing.T) {
	srv := newServer(t, false)
	p := Start(t, srv.addr())
	for i := range 20 {
		p.SetFaults(Faults{CloseProb: 1, Seed: uint64(i + 1)})
		c := dial(t, p)
		sent := strings.Repeat("0123456789", 100) + ";"
		write(t, c, sent)
		_ = c.SetReadDeadline(time.Now().Add(patience))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("the connection was not closed")
		}
		srv.waitFor(t, "the server side to close", func() bool { return srv.eofs == i+1 })
		srv.mu.Lock()
		got := srv.raw[srv.conns[len(srv.conns)-1]].String()
		srv.mu.Unlock()
		if !strings.HasPrefix(sent, got) {
			t.Fatalf("the server got %q, not a prefix of what was sent", got)
		}
	}
	if st := p.Stats(); st.Closes != 20 {
		t.Fatalf("stats %+v, want 20 closes", st)
	}
}

func TestBlackholeDelaysWithoutClosing(t *testing.T) {
	srv := newServer(t, true)
	p := Start(t, srv.addr())
	p.SetFaults(Faults{BlackholeProb: 1, BlackholeFor: 300 * time.Millisecond, Seed: 7})
	c := dial(t, p)
	start := time.Now()
	write(t, c, "ping;")
	if got := readN(t, c, 5); got != "ping;" {
		t.Fatalf("echo = %q", got)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("round trip %v through a 300ms blackhole", d)
	}
	if st := p.Stats(); st.Blackholes < 1 || st.Open != 1 {
		t.Fatalf("stats %+v", st)
	}
	// Heal ends a blackhole at once.
	p.SetFaults(Faults{BlackholeProb: 1, BlackholeFor: time.Hour})
	write(t, c, "pong;")
	waitChunks(t, p, 3)
	p.Heal()
	if got := readN(t, c, 5); got != "pong;" {
		t.Fatalf("echo after Heal = %q", got)
	}
}

func TestDelayAddsLatency(t *testing.T) {
	srv := newServer(t, true)
	p := Start(t, srv.addr())
	p.SetFaults(Faults{Delay: 50 * time.Millisecond, Jitter: 10 * time.Millisecond})
	c := dial(t, p)
	start := time.Now()
	write(t, c, "x;")
	readN(t, c, 2)
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Fatalf("round trip %v, want at least 2 × 50ms", d)
	}
}

// TestFaultsNeverCorruptTheStream sends a long random stream through
// delays, jitter and blackholes and expects it back unchanged; with close
// faults too, every server must have received a prefix of its stream.
func TestFaultsNeverCorruptTheStream(t *testing.T) {
	t.Run("delays and blackholes", func(t *testing.T) {
		srv := newServer(t, true)
		p := Start(t, srv.addr())
		p.SetFaults(Faults{Delay: time.Millisecond, Jitter: 2 * time.Millisecond, BlackholeProb: 0.05, BlackholeFor: 20 * time.Millisecond, Seed: 3})
		c := dial(t, p)
		sent := make([]byte, 1<<20)
		r := rand.New(rand.NewPCG(1, 2))
		for i := range sent {
			sent[i] = byte(r.UintN(256))
		}
		errc := make(chan error, 1)
		go func() {
			for off := 0; off < len(sent); {
				n := min(1+r.IntN(8000), len(sent)-off)
				if _, err := c.Write(sent[off : off+n]); err != nil {
					errc <- err
					return
				}
				off += n
			}
			errc <- nil
		}()
		got := make([]byte, len(sent))
		_ = c.SetReadDeadline(time.Now().Add(4 * patience))
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatal(err)
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, sent) {
			t.Fatal("the stream came back altered")
		}
	})
	t.Run("with closes", func(t *testing.T) {
		srv := newServer(t, false)
		p := Start(t, srv.addr())
		p.SetFaults(Faults{Jitter: time.Millisecond, CloseProb: 0.1, BlackholeProb: 0.05, BlackholeFor: 10 * time.Millisecond, Seed: 5})
		var sent []string
		for i := range 10 {
			c := dial(t, p)
			var all strings.Builder
			for j := range 100 {
				m := strings.Repeat(string(rune('a'+i)), 1+j%50) + ";"
				if _, err := c.Write([]byte(m)); err != nil {
					break
				}
				all.WriteString(m)
				time.Sleep(100 * time.Microsecond)
			}
			sent = append(sent, all.String())
			_ = c.Close()
		}
		srv.waitFor(t, "every server side to end", func() bool { return srv.eofs == 10 })
		srv.mu.Lock()
		defer srv.mu.Unlock()
		for _, sc := range srv.conns {
			got := srv.raw[sc].String()
			ok := false
			for _, s := range sent {
				ok = ok || strings.HasPrefix(s, got)
			}
			if !ok {
				t.Fatalf("a server side got %q, no prefix of a stream sent", got)
			}
		}
	})
}

func TestCloseIsIdempotentAndStopsListening(t *testing.T) {
	srv := newServer(t, true)
	p, err := New(srv.addr())
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, p)
	write(t, c, "x;")
	readN(t, c, 2)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(patience))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("connection open after Close")
	}
	if c2, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		_ = c2.Close()
		t.Fatal("still listening after Close")
	}
}

func TestNewFailsOnlyWhenItCannotListen(t *testing.T) {
	// A dead target is no error for New: connections to it are closed.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	_ = ln.Close()
	p := Start(t, dead)
	c, err := net.DialTimeout("tcp", p.Addr(), time.Second)
	if err != nil {
		return // reset before the dial returned
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(patience))
	if _, err := c.Read(make([]byte, 1)); err == nil || os.IsTimeout(err) {
		t.Fatalf("connection to a dead target: %v", err)
	}
}

func TestStallPausesEveryProxyAndResumesOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	a, b := Start(t, ln.Addr().String()), Start(t, ln.Addr().String())
	resume := Stall(a, b)
	if !a.Paused() || !b.Paused() {
		t.Fatal("Stall did not pause every proxy")
	}
	resume()
	if a.Paused() || b.Paused() {
		t.Fatal("resume did not resume every proxy")
	}
	a.Pause()
	resume() // only the first call acts
	if !a.Paused() {
		t.Fatal("a second resume resumed a later pause")
	}
	a.Resume()
}
