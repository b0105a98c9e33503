// Package redistest starts throwaway redis-server processes for tests, a
// single server ([Start]) or a Redis Cluster of several masters
// ([StartCluster]): each server on a free loopback port, in its own
// temporary folder, without persistence, and stopped when the test ends.
// Tests never touch a Redis they did not start (in particular nothing on
// 6379).
package redistest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	// readyTimeout bounds how long a server may take to answer PING.
	readyTimeout = 15 * time.Second
	// portAttempts is how often Start picks another port when the chosen
	// one was taken between choosing and binding it.
	portAttempts = 5
	// logTail is how much of the server log a failure message shows.
	logTail = 2048
	// defaultPort is the port of any developer's own Redis: never used.
	defaultPort = 6379
)

// installHint is part of the failure message when redis-server is missing.
const installHint = "install it: apt-get install redis-server (Debian/Ubuntu) or brew install redis"

// Option adjusts a server started by [Start].
type Option func(*config)

type config struct {
	args []string
}

// WithArgs appends command-line arguments to redis-server, for example
// WithArgs("--maxmemory", "10mb"). They may override the defaults.
func WithArgs(args ...string) Option {
	return func(c *config) { c.args = append(c.args, args...) }
}

// Server is one redis-server process owned by a test. Its methods are safe
// for concurrent use, but Stop and Restart are meant for the test goroutine.
type Server struct {
	// Addr is "127.0.0.1:port". It stays the same across Stop and Restart.
	Addr string

	bin  string
	dir  string
	args []string // without the port

	mu   sync.Mutex
	proc *process // nil while stopped
}

// process is one run of redis-server.
type process struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd.Wait returned
	log    string
}

// Start starts a redis-server on a free 127.0.0.1 port in t.TempDir() and
// returns once it answers PING. It fails the test, with the tail of the
// server log, if the server does not come up, and with an install hint if
// redis-server is not on PATH. The server is killed in t.Cleanup.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := newServer(t, t.TempDir(), opts)
	if err := s.startOnFreePort(freePort); err != nil {
		t.Fatalf("redistest: %v", err)
	}
	return s
}

// newServer locates redis-server and prepares a Server in dir, killed in
// t.Cleanup. Each server has a folder of its own (StartCluster puts its
// nodes side by side in subfolders of one TempDir).
func newServer(t testing.TB, dir string, opts []Option) *Server {
	t.Helper()
	var c config
	for _, o := range opts {
		o(&c)
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redistest: redis-server not found on PATH; %s", installHint)
	}
	args := []string{
		"--bind", "127.0.0.1",
		"--dir", dir,
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
	}
	s := &Server{bin: bin, dir: dir, args: append(args, c.args...)}
	t.Cleanup(s.Stop)
	return s
}

// startOnFreePort starts s on a port chosen by pick, trying another one
// when the chosen port was taken before redis-server could bind it.
func (s *Server) startOnFreePort(pick func() (int, error)) error {
	var err error
	for range portAttempts {
		var port int
		if port, err = pick(); err != nil {
			return err
		}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if err = s.start(); !errors.Is(err, errPortTaken) {
			return err
		}
	}
	return err
}

// Stop kills the server and waits for it to exit, simulating a store that
// became unavailable. Data is lost. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return
	}
	_ = s.proc.cmd.Process.Kill()
	<-s.proc.exited
	s.proc = nil
}

// Restart starts the server again on the same address, empty, after Stop
// (it stops it first if it is running). It fails the test if the server
// does not come up.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	// The port may be held for a moment by the old process's sockets.
	deadline := time.Now().Add(readyTimeout)
	for {
		err := s.start()
		if err == nil {
			return
		}
		if !errors.Is(err, errPortTaken) || time.Now().After(deadline) {
			t.Fatalf("redistest: restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var errPortTaken = errors.New("port already in use")

// start runs redis-server on s.Addr and waits until it answers PING.
func (s *Server) start() error {
	_, port, err := net.SplitHostPort(s.Addr)
	if err != nil {
		return err
	}
	logPath := filepath.Join(s.dir, "redis-"+port+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close() // the child holds its own descriptor
	fmt.Fprintf(logFile, "--- redistest: starting redis-server on %s at %s\n", s.Addr, time.Now().Format(time.RFC3339Nano))

	cmd := exec.Command(s.bin, append([]string{"--port", port}, s.args...)...)
	cmd.Dir = s.dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	p := &process{cmd: cmd, exited: make(chan struct{}), log: logPath}
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()

	if err := p.waitReady(s.Addr); err != nil {
		_ = cmd.Process.Kill()
		<-p.exited
		tail := tailOf(p.log)
		if strings.Contains(tail, "Address already in use") {
			return fmt.Errorf("%s: %w", s.Addr, errPortTaken)
		}
		return fmt.Errorf("redis-server on %s: %v; log %s ends with:\n%s", s.Addr, err, logPath, tail)
	}
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
	return nil
}

// waitReady polls PING until the server answers, exits, or readyTimeout.
func (p *process) waitReady(addr string) error {
	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case <-p.exited:
			return fmt.Errorf("exited before answering PING (%v)", p.cmd.ProcessState)
		default:
		}
		err := ping(addr)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer to PING within %v: %w", readyTimeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ping sends one PING and expects PONG.
func ping(addr string) error {
	reply, err := command(addr, "PING")
	if err != nil {
		return err
	}
	if reply != "PONG" {
		return fmt.Errorf("PING answered %q", reply)
	}
	return nil
}

// command sends one command in RESP on a connection of its own and returns
// the reply, which must be a simple or a bulk string; an error reply is
// returned as an error.
func command(addr string, args ...string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	var req strings.Builder
	fmt.Fprintf(&req, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&req, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := conn.Write([]byte(req.String())); err != nil {
		return "", err
	}
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	switch {
	case strings.HasPrefix(line, "+"):
		return line[1:], nil
	case strings.HasPrefix(line, "-"):
		return "", fmt.Errorf("%s answered %s", args[0], line[1:])
	case strings.HasPrefix(line, "$"):
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", fmt.Errorf("%s answered %q", args[0], line)
		}
		body := make([]byte, n+2)
		if _, err := io.ReadFull(r, body); err != nil {
			return "", err
		}
		return string(body[:n]), nil
	}
	return "", fmt.Errorf("%s answered %q", args[0], line)
}

// tail returns the end of the server's log.
func (s *Server) tail() string {
	_, port, _ := net.SplitHostPort(s.Addr)
	return tailOf(filepath.Join(s.dir, "redis-"+port+".log"))
}

// tailOf returns the last logTail bytes of the file at path, from a line
// start.
func tailOf(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	if len(b) > logTail {
		b = b[len(b)-logTail:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return string(b)
}

// freePort asks the kernel for a free loopback port. Another process may
// take it before redis-server binds it; Start then tries another one.
func freePort() (int, error) {
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("find a free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		if err := l.Close(); err != nil {
			return 0, fmt.Errorf("find a free port: %w", err)
		}
		if port != defaultPort {
			return port, nil
		}
	}
}
