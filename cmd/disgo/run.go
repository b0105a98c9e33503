package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/disgolock/disgo/locker"
)

// Defaults of run.
const (
	defaultGrace = 5 * time.Second
)

// forwarded are the signals run passes on to the command.
var forwarded = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT}

// waitFlag is --wait: a duration, or "forever" (the default).
type waitFlag struct{ d time.Duration }

func (w *waitFlag) String() string {
	if w == nil || w.d == locker.WaitForever {
		return "forever"
	}
	return w.d.String()
}

func (w *waitFlag) Set(s string) error {
	if s == "forever" {
		w.d = locker.WaitForever
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return errors.New(`want a duration such as 30s, 0 for a single attempt, or "forever"`)
	}
	if d > locker.MaxWait {
		return fmt.Errorf("at most %v; use \"forever\"", locker.MaxWait)
	}
	w.d = d
	return nil
}

var cmdRun = &command{
	name:     "run",
	args:     "NAME [--] COMMAND [ARGS...]",
	summary:  "run a command while holding a lock (like flock(1))",
	trailing: true,
	flags: func(fs *flag.FlagSet, o *opts) {
		o.wait.d = locker.WaitForever
		fs.Var(&o.wait, "wait", "how long to wait for the lock: a `DURATION`, 0 for one attempt, or forever")
		fs.DurationVar(&o.lease, "lease", locker.DefaultRenewLease, "the lease, renewed every third of it while the command runs: how long the lock outlives a disgo that dies")
		fs.BoolVar(&o.fair, "fair", false, "wait in arrival order (the default)")
		fs.BoolVar(&o.barging, "barging", false, "take the lock whenever it is free, whoever waited longest")
		fs.DurationVar(&o.grace, "grace", defaultGrace, "after the lock is lost, how long the command has between SIGTERM and SIGKILL")
		fs.StringVar(&o.owner, "owner", "", "the owner `TOKEN` to hold the lock as; default host:pid:random")
	},
	help: `Run waits for the lock NAME (in arrival order by default, --barging to take it
whenever it is free), then runs COMMAND with ARGS while holding it, renewing
the lease every third of --lease, and releases it when COMMAND ends. Flags
go before NAME or between NAME and "--"; everything after "--" (or after
NAME when no "--" follows) is the command, whose own flags are left alone.

COMMAND runs in a process group of its own, with disgo's standard streams
and environment, plus DISGO_LOCK_NAME (the store's lock name),
DISGO_LOCK_OWNER and DISGO_LOCK_FENCE (the fencing token: pass it to the
resource the lock protects, which should reject tokens lower than the last
it saw). SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to disgo are forwarded to
that process group; while disgo still waits for the lock they end the wait
(status 128+N). On Linux, if disgo itself is killed with SIGKILL, COMMAND
gets SIGKILL too.

If the lock is lost while COMMAND runs (the lease lapsed because the store
could not be reached in time, or an operator freed it with release
--force), disgo sends SIGTERM to the process group, then SIGKILL after
--grace, and exits with status 79.

Exit status: COMMAND's own; 128+N when a signal N killed it; 75 when the
lock was not obtained within --wait; 79 when the lock was lost; 126 when
COMMAND is not executable, 127 when it is not found (the lock is then not
taken); 64, 69, 77, 78 as for every command (see 'disgo --help').

Examples:
  disgo run --wait 0 backup -- /usr/local/bin/backup.sh   # skip if running
  disgo run --wait 10m --lease 1m --namespace jobs nightly -- make -C /srv nightly`,
	run: runRun,
}

func runRun(ctx context.Context, a *app, o *opts, args []string) error {
	if len(args) < 2 {
		return usagef("run needs a lock NAME and a COMMAND: disgo run NAME -- COMMAND [ARGS...]")
	}
	if o.fair && o.barging {
		return usagef("--fair and --barging exclude each other")
	}
	if o.lease < 10*time.Millisecond || o.lease > locker.MaxLease {
		return usagef("--lease %v: want from 10ms to %v", o.lease, locker.MaxLease)
	}
	if o.grace < 0 {
		return usagef("--grace %v: negative", o.grace)
	}
	key, argv := args[0], args[1:]
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return execError(argv[0], err)
	}
	owner := o.owner
	if owner == "" {
		owner = defaultOwner()
	}
	mode := locker.Fair
	if o.barging {
		mode = locker.Barging
	}

	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, forwarded...)
	defer signal.Stop(sigs)

	s, err := a.connect(ctx, o)
	if err != nil {
		return err
	}
	defer s.Close()
	l, err := s.locker(mode, o.lease)
	if err != nil {
		return usagef("%v", err)
	}
	defer l.Close()

	// Wait for the lock; a signal ends the wait.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var interrupted os.Signal
	var wg sync.WaitGroup
	waited := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case sig := <-sigs:
			interrupted = sig
			cancel()
		case <-waited:
		}
	}()
	lk, err := l.LockWithRenewal(wctx, key, o.wait.d, locker.WithOwner(owner))
	close(waited)
	wg.Wait()
	if interrupted != nil {
		if lk != nil {
			releaseLock(a, s, lk)
		}
		return &exitErr{code: signalStatus(interrupted), msg: fmt.Sprintf("interrupted by %v while waiting for the lock %q", interrupted, key)}
	}
	if err != nil {
		if errors.Is(err, locker.ErrNotObtained) {
			return &exitErr{code: exitTempFail, msg: notObtained(ctx, s, l, key, o.wait)}
		}
		return s.diagnose(err)
	}

	cmd := exec.Command(path, argv[1:]...)
	cmd.Args[0] = argv[0]
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, a.stdout, a.stderr
	cmd.Env = append(os.Environ(),
		"DISGO_LOCK_NAME="+lk.Name(),
		"DISGO_LOCK_OWNER="+lk.Owner(),
		"DISGO_LOCK_FENCE="+strconv.FormatInt(lk.Fence(), 10),
	)
	startGroup(cmd)
	if err := cmd.Start(); err != nil {
		releaseLock(a, s, lk)
		return execError(argv[0], err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()

	lost := lk.Done()
	var kill <-chan time.Time
	var lostErr error
wait:
	for {
		select {
		case sig := <-sigs:
			signalGroup(cmd.Process, sig)
		case <-lost:
			lost = nil
			lostErr = lk.Err()
			fmt.Fprintf(a.stderr, "%v; stopping the command (SIGTERM, then SIGKILL after %v)\n", lostErr, o.grace)
			signalGroup(cmd.Process, syscall.SIGTERM)
			t := time.NewTimer(o.grace)
			defer t.Stop()
			kill = t.C
		case <-kill:
			kill = nil
			signalGroup(cmd.Process, syscall.SIGKILL)
		case <-exited:
			break wait
		}
	}
	if lostErr != nil {
		return &exitErr{code: exitLost, msg: fmt.Sprintf("the lock %q was lost while the command ran; the command was stopped (exit status %d)", key, exitLost)}
	}
	releaseLock(a, s, lk)
	if st := exitStatus(cmd.ProcessState); st != 0 {
		return &exitErr{code: st}
	}
	return nil
}

// releaseLock releases lk, warning on failure: the lease then ends on its
// own, and the status stays the command's.
func releaseLock(a *app, s *session, lk *locker.Lock[string]) {
	ctx, cancel := s.call(context.Background())
	defer cancel()
	if err := lk.Release(ctx); err != nil && !errors.Is(err, locker.ErrLost) {
		fmt.Fprintf(a.stderr, "disgo: warning: %v (the lease ends on its own within --lease)\n", err)
	}
}

// notObtained says who holds the lock that was not obtained.
func notObtained(ctx context.Context, s *session, l *locker.Locker[string], key string, wait waitFlag) string {
	msg := fmt.Sprintf("the lock %q was not obtained within --wait %v", key, wait.String())
	in, ok := s.store.(stateInspector)
	name, err := l.Name(key)
	if !ok || err != nil {
		return msg
	}
	cctx, cancel := s.call(ctx)
	defer cancel()
	if st, err := in.Inspect(cctx, name); err == nil && st.Owner != "" {
		msg += fmt.Sprintf(" (held by %s, lease left %v, %d waiting)", st.Owner, st.TTL.Round(time.Millisecond), st.Waiters)
	}
	return msg
}

// execError maps a failure to find or start the command to 127 or 126.
func execError(name string, err error) error {
	switch {
	case errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist):
		return &exitErr{code: exitNotFound, msg: fmt.Sprintf("command %q not found: %v", name, err),
			hint: "give its path, or check PATH"}
	case errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.ENOEXEC):
		return &exitErr{code: exitNoExec, msg: fmt.Sprintf("command %q cannot be executed: %v", name, err),
			hint: "check that it is a file with execute permission (chmod +x)"}
	}
	return &exitErr{code: exitNoExec, msg: fmt.Sprintf("command %q: %v", name, err)}
}

// defaultOwner is "host:pid:random": who holds a lock shows in inspect.
func defaultOwner() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	if len(host) > 128 {
		host = host[:128]
	}
	return fmt.Sprintf("%s:%d:%s", host, os.Getpid(), locker.NewOwner())
}
