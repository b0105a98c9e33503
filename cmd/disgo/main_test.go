package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/disgolock/disgo/internal/rediscore"
	"github.com/disgolock/disgo/internal/redistest"
)

// bin is the disgo binary, built once by TestMain.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "disgo-cli-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	bin = filepath.Join(dir, "disgo")
	if out, err := exec.Command("go", append(append([]string{"build"}, raceFlags...), "-o", bin, ".")...).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// patience bounds every wait of these tests for something to happen: a
// liveness bound that fails the test, not a measurement.
const patience = 30 * time.Second

// env is how the tests run disgo against one store.
type env struct {
	t    *testing.T
	vars []string // DISGO_* settings
	dir  string   // for mark files
}

func newEnv(t *testing.T, adapter string) (*env, *redistest.Server) {
	t.Helper()
	srv := redistest.Start(t)
	return &env{t: t, dir: t.TempDir(), vars: []string{
		"DISGO_REDIS=redis://" + srv.Addr, "DISGO_ADAPTER=" + adapter, "DISGO_NAMESPACE=", "DISGO_CLUSTER=",
	}}, srv
}

// result is one finished disgo.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// proc is a disgo running in the background.
type proc struct {
	cmd            *exec.Cmd
	stdout, stderr *syncBuffer
	done           chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (e *env) start(args ...string) *proc {
	e.t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), e.vars...)
	cmd.Dir = e.dir
	p := &proc{cmd: cmd, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	e.t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	return p
}

// wait waits for p to end and returns its result.
func (p *proc) wait(t *testing.T) result {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(patience):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("disgo %v did not end; stderr:\n%s", p.cmd.Args[1:], p.stderr)
	}
	return result{stdout: p.stdout.String(), stderr: p.stderr.String(), code: p.cmd.ProcessState.ExitCode()}
}

func (e *env) run(args ...string) result {
	e.t.Helper()
	return e.start(args...).wait(e.t)
}

// waitFor polls cond until it holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *env) path(name string) string { return filepath.Join(e.dir, name) }

func (e *env) exists(name string) bool {
	_, err := os.Stat(e.path(name))
	return err == nil
}

func (e *env) read(name string) string {
	b, _ := os.ReadFile(e.path(name))
	return string(b)
}

// holdScript is a shell command that appends "start ID" to marks, waits
// for the file release-ID, and appends "end ID".
func holdScript(id string) string {
	return fmt.Sprintf(`echo "start %[1]s" >> marks; while [ ! -e release-%[1]s ]; do sleep 0.02; done; echo "end %[1]s" >> marks`, id)
}

// inspectJSON runs inspect --json on one name and decodes it.
func (e *env) inspectJSON(args ...string) map[string]any {
	e.t.Helper()
	r := e.run(append([]string{"inspect", "--json"}, args...)...)
	if r.code != 0 {
		e.t.Fatalf("inspect: %v", r)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		e.t.Fatalf("inspect --json: %v in %q", err, r.stdout)
	}
	return v
}

func TestRunCompetingNeverOverlap(t *testing.T) {
	for _, adapter := range []string{"goredis", "rueidis"} {
		t.Run(adapter, func(t *testing.T) {
			e, _ := newEnv(t, adapter)
			a := e.start("run", "--owner", "owner-a", "--namespace", "jobs", "nightly", "--", "sh", "-c", holdScript("a"))
			waitFor(t, "a to start", func() bool { return strings.Contains(e.read("marks"), "start a") })
			b := e.start("run", "--owner", "owner-b", "--namespace", "jobs", "nightly", "--", "sh", "-c", holdScript("b"))

			// b waits its turn: it is queued behind a, and has not started.
			waitFor(t, "b to queue", func() bool {
				v := e.inspectJSON("--namespace", "jobs", "nightly")
				return v["waiters"] == float64(1)
			})
			v := e.inspectJSON("--namespace", "jobs", "nightly")
			if v["owner"] != "owner-a" || v["held"] != true || v["count"] != float64(1) || v["key"] != "nightly" || v["namespace"] != "jobs" {
				t.Fatalf("inspect --json while a holds: %v", v)
			}
			if f, _ := v["fence"].(float64); f <= 0 {
				t.Fatalf("fence %v, want positive", v["fence"])
			}
			if l, _ := v["lease_ms"].(float64); l <= 0 || l > 30000 {
				t.Fatalf("lease_ms %v, want in (0, 30000]", v["lease_ms"])
			}
			q, _ := v["queue"].([]any)
			if len(q) != 1 {
				t.Fatalf("inspect --json queue: %v", v["queue"])
			}
			w := q[0].(map[string]any)
			if w["position"] != float64(0) || w["owner"] != "owner-b" || w["ticket"] == "" {
				t.Fatalf("inspect --json waiter: %v", w)
			}
			if age, _ := w["heartbeat_age_ms"].(float64); age < 0 {
				t.Fatalf("heartbeat age %v, want known", w["heartbeat_age_ms"])
			}
			r := e.run("inspect", "--namespace", "jobs", "nightly")
			for _, want := range []string{"LOCK        nightly (namespace jobs)", "HOLDER      owner-a", "HOLDS       1", "WAITERS     1",
				"POSITION  OWNER    TICKET", "\n0         owner-b  " + w["ticket"].(string)} {
				if !strings.Contains(r.stdout, want) {
					t.Fatalf("inspect table lacks %q:\n%s", want, r)
				}
			}
			checkList(t, e)

			if strings.Contains(e.read("marks"), "start b") {
				t.Fatalf("b started while a held the lock:\n%s", e.read("marks"))
			}
			if err := os.WriteFile(e.path("release-a"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if r := a.wait(t); r.code != 0 {
				t.Fatalf("a: %v", r)
			}
			waitFor(t, "b to start", func() bool { return strings.Contains(e.read("marks"), "start b") })
			if v := e.inspectJSON("--namespace", "jobs", "nightly"); v["owner"] != "owner-b" {
				t.Fatalf("after a, the holder is %v, want owner-b", v["owner"])
			}
			if err := os.WriteFile(e.path("release-b"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if r := b.wait(t); r.code != 0 {
				t.Fatalf("b: %v", r)
			}
			if got, want := e.read("marks"), "start a\nend a\nstart b\nend b\n"; got != want {
				t.Fatalf("marks:\n%s\nwant:\n%s", got, want)
			}
			if v := e.inspectJSON("--namespace", "jobs", "nightly"); v["held"] != false || v["waiters"] != float64(0) {
				t.Fatalf("after both, the lock is not free: %v", v)
			}
		})
	}
}

// checkList checks list in both formats while owner-a holds jobs:nightly
// and one waiter waits.
func checkList(t *testing.T, e *env) {
	t.Helper()
	r := e.run("list")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 2 {
		t.Fatalf("list: %v", r)
	}
	if f := strings.Fields(lines[0]); strings.Join(f, " ") != "NAMESPACE KEY KIND HOLDER HOLDS FENCE LEASE WAITERS" {
		t.Fatalf("list header: %q", lines[0])
	}
	f := strings.Fields(lines[1])
	if len(f) != 8 || f[0] != "jobs" || f[1] != "nightly" || f[2] != "lock" || f[3] != "owner-a" || f[4] != "1" || f[7] != "1" {
		t.Fatalf("list row: %q", lines[1])
	}
	r = e.run("list", "--json")
	var v map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || v["owner"] != "owner-a" || v["name"] != "jobs:nightly" || v["waiters"] != float64(1) {
		t.Fatalf("list --json: %v %v", err, r)
	}
	// Filters that exclude it.
	for _, args := range [][]string{{"--namespace", "other"}, {"--match", "week*"}} {
		if r := e.run(append([]string{"list", "--json"}, args...)...); r.code != 0 || r.stdout != "" {
			t.Fatalf("list %v: %v", args, r)
		}
	}
	if r := e.run("list", "--json", "--namespace", "jobs", "--match", "n?ght[a-z]*"); r.code != 0 || !strings.Contains(r.stdout, `"owner-a"`) {
		t.Fatalf("list with matching filters: %v", r)
	}
}

func TestRunLockLost(t *testing.T) {
	for _, c := range []struct {
		name   string
		script string
	}{
		{"StopsOnTERM", `echo started > up; while :; do sleep 0.02; done`},
		{"KilledAfterGrace", `trap "" TERM; echo started > up; while :; do sleep 0.02; done`},
	} {
		t.Run(c.name, func(t *testing.T) {
			e, _ := newEnv(t, "goredis")
			p := e.start("run", "--lease", "600ms", "--grace", "300ms", "job", "--", "sh", "-c", c.script)
			waitFor(t, "the command to start", func() bool { return e.exists("up") })
			if r := e.run("release", "--force", "job"); r.code != 0 || !strings.Contains(r.stdout, "freed job") {
				t.Fatalf("release --force: %v", r)
			}
			r := p.wait(t)
			if r.code != exitLost || !strings.Contains(r.stderr, "was lost while the command ran") {
				t.Fatalf("run after losing the lock: %v", r)
			}
		})
	}
}

func TestRunNotObtained(t *testing.T) {
	e, _ := newEnv(t, "goredis")
	a := e.start("run", "--owner", "holder-1", "job", "sh", "-c", holdScript("a"))
	waitFor(t, "a to start", func() bool { return strings.Contains(e.read("marks"), "start a") })
	for _, wait := range []string{"0", "200ms"} {
		r := e.run("run", "--wait", wait, "job", "--", "sh", "-c", "echo ran >> marks")
		if r.code != exitTempFail || !strings.Contains(r.stderr, "not obtained") || !strings.Contains(r.stderr, "held by holder-1") {
			t.Fatalf("run --wait %s: %v", wait, r)
		}
	}
	if strings.Contains(e.read("marks"), "ran") {
		t.Fatal("a command ran without the lock")
	}
	_ = os.WriteFile(e.path("release-a"), nil, 0o644)
	if r := a.wait(t); r.code != 0 {
		t.Fatalf("a: %v", r)
	}
}

func TestRunExitStatus(t *testing.T) {
	e, _ := newEnv(t, "goredis")
	if err := os.WriteFile(e.path("noexec"), []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		code int
	}{
		{[]string{"sh", "-c", "exit 0"}, 0},
		{[]string{"sh", "-c", "exit 7"}, 7},
		{[]string{"sh", "-c", "kill -USR1 $$"}, 128 + int(syscall.SIGUSR1)},
		{[]string{"no-such-command-disgo-test"}, exitNotFound},
		{[]string{"./noexec"}, exitNoExec},
		{[]string{"./missing"}, exitNotFound},
	} {
		r := e.run(append([]string{"run", "job", "--"}, c.args...)...)
		if r.code != c.code {
			t.Errorf("run %v: %v; want exit %d", c.args, r, c.code)
		}
	}
	// A command's own flags are not disgo's, with or without "--".
	if r := e.run("run", "job", "sh", "-c", "exit 3"); r.code != 3 {
		t.Errorf("run without --: %v", r)
	}
	if r := e.run("run", "job"); r.code != exitUsage {
		t.Errorf("run without a command: %v", r)
	}
	if v := e.inspectJSON("job"); v["held"] != false {
		t.Errorf("the lock is held after the runs: %v", v)
	}
}

func TestRunForwardsSignals(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT} {
		t.Run(sig.String(), func(t *testing.T) {
			e, _ := newEnv(t, "goredis")
			script := fmt.Sprintf(`trap 'echo got >> marks; exit 3' %d; echo ready > up; while :; do sleep 0.02; done`, int(sig))
			p := e.start("run", "job", "--", "sh", "-c", script)
			waitFor(t, "the command to start", func() bool { return e.exists("up") })
			if err := p.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if r := p.wait(t); r.code != 3 || e.read("marks") != "got\n" {
				t.Fatalf("after %v: %v; marks %q", sig, r, e.read("marks"))
			}
			if v := e.inspectJSON("job"); v["held"] != false {
				t.Fatalf("the lock is held after the run: %v", v)
			}
		})
	}
}

func TestRunSignalWhileWaiting(t *testing.T) {
	e, _ := newEnv(t, "goredis")
	a := e.start("run", "job", "sh", "-c", holdScript("a"))
	waitFor(t, "a to start", func() bool { return strings.Contains(e.read("marks"), "start a") })
	b := e.start("run", "job", "--", "sh", "-c", "echo b >> marks")
	waitFor(t, "b to queue", func() bool { return e.inspectJSON("job")["waiters"] == float64(1) })
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	if r := b.wait(t); r.code != 128+int(syscall.SIGTERM) || !strings.Contains(r.stderr, "while waiting") {
		t.Fatalf("b: %v", r)
	}
	waitFor(t, "b to leave the queue", func() bool { return e.inspectJSON("job")["waiters"] == float64(0) })
	_ = os.WriteFile(e.path("release-a"), nil, 0o644)
	if r := a.wait(t); r.code != 0 || e.read("marks") != "start a\nend a\n" {
		t.Fatalf("a: %v; marks %q", r, e.read("marks"))
	}
}

func TestReleaseForce(t *testing.T) {
	for _, adapter := range []string{"goredis", "rueidis"} {
		t.Run(adapter, func(t *testing.T) {
			e, _ := newEnv(t, adapter)
			a := e.start("run", "--lease", "1s", "--owner", "stuck", "--namespace", "ns", "job", "sh", "-c", `echo up > up; exec sleep 60`)
			waitFor(t, "a to start", func() bool { return e.exists("up") })
			b := e.start("run", "--namespace", "ns", "job", "--", "sh", "-c", "echo b > b-ran")
			waitFor(t, "b to queue", func() bool { return e.inspectJSON("--namespace", "ns", "job")["waiters"] == float64(1) })

			if r := e.run("release", "--namespace", "ns", "job"); r.code != exitUsage || !strings.Contains(r.stderr, "--force") {
				t.Fatalf("release without --force: %v", r)
			}
			r := e.run("release", "--force", "--json", "--namespace", "ns", "job")
			var v map[string]any
			if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || r.code != 0 || v["freed"] != true || !strings.HasSuffix(v["former"].(string), " stuck") {
				t.Fatalf("release --force --json: %v %v", err, r)
			}
			// The waiter is woken and runs; the former holder learns at
			// its next renewal and stops its command.
			if r := b.wait(t); r.code != 0 || !e.exists("b-ran") {
				t.Fatalf("b: %v", r)
			}
			if r := a.wait(t); r.code != exitLost {
				t.Fatalf("a: %v", r)
			}
			if r := e.run("release", "--force", "--namespace", "ns", "job"); r.code != exitFailure || !strings.Contains(r.stderr, "free already") {
				t.Fatalf("release --force of a free lock: %v", r)
			}
		})
	}
}

func TestWatch(t *testing.T) {
	e, _ := newEnv(t, "goredis")
	a := e.start("run", "--owner", "watched", "job", "sh", "-c", holdScript("a"))
	waitFor(t, "a to start", func() bool { return strings.Contains(e.read("marks"), "start a") })

	r := e.run("watch", "--interval", "50ms", "--count", "2", "job")
	if r.code != 0 || strings.Count(r.stdout, "--- ") != 2 || strings.Count(r.stdout, "HOLDER      watched") != 2 {
		t.Fatalf("watch --count 2: %v", r)
	}

	// Until interrupted, one JSON object per refresh.
	p := e.start("watch", "--json", "--interval", "50ms", "job")
	waitFor(t, "three refreshes", func() bool { return strings.Count(p.stdout.String(), "\n") >= 3 })
	_ = os.WriteFile(e.path("release-a"), nil, 0o644)
	waitFor(t, "a refresh showing the lock free", func() bool { return strings.Contains(p.stdout.String(), `"held":false`) })
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	res := p.wait(t)
	if res.code != 0 {
		t.Fatalf("watch after SIGINT: %v", res)
	}
	var owners []any
	for _, line := range strings.Split(strings.TrimSpace(res.stdout), "\n") {
		var v map[string]any
		if err := json.Unmarshal([]byte(line), &v); err != nil || v["time"] == nil || v["name"] != "job" {
			t.Fatalf("watch --json line %q: %v", line, err)
		}
		owners = append(owners, v["owner"])
	}
	if owners[0] != "watched" || owners[len(owners)-1] != "" {
		t.Fatalf("watch owners %v: want watched first, free last", owners)
	}
	if r := a.wait(t); r.code != 0 {
		t.Fatalf("a: %v", r)
	}
}

func TestErrors(t *testing.T) {
	e := &env{t: t, dir: t.TempDir(), vars: []string{"DISGO_REDIS=", "DISGO_CLUSTER=", "DISGO_ADAPTER=", "DISGO_NAMESPACE="}}
	t.Run("Unreachable", func(t *testing.T) {
		for _, adapter := range []string{"goredis", "rueidis"} {
			r := e.run("--adapter", adapter, "--redis", "redis://127.0.0.1:1", "inspect", "x")
			if r.code != exitUnavailable || !strings.Contains(r.stderr, "cannot reach Redis at 127.0.0.1:1 (--redis)") ||
				!strings.Contains(r.stderr, "check --redis or DISGO_REDIS") {
				t.Errorf("%s: %v", adapter, r)
			}
		}
		e2 := &env{t: t, dir: e.dir, vars: append(e.vars, "DISGO_REDIS=redis://127.0.0.1:1")}
		if r := e2.run("list"); r.code != exitUnavailable || !strings.Contains(r.stderr, "(DISGO_REDIS)") {
			t.Errorf("from the environment: %v", r)
		}
	})
	t.Run("BadURL", func(t *testing.T) {
		for _, u := range []string{"http://localhost:6379", "redis://localhost:6379/notadb"} {
			if r := e.run("--redis", u, "list"); r.code != exitUsage || !strings.Contains(r.stderr, "--redis") {
				t.Errorf("%s: %v", u, r)
			}
		}
	})
	t.Run("Usage", func(t *testing.T) {
		for _, args := range [][]string{{"frobnicate"}, {"inspect"}, {"inspect", "--nope", "x"}, {"--adapter", "x", "list"}, {"run", "--fair", "--barging", "x", "true"}, {}} {
			if r := e.run(args...); r.code != exitUsage {
				t.Errorf("%v: %v", args, r)
			}
		}
	})
	t.Run("Cluster", func(t *testing.T) {
		c := redistest.StartCluster(t, 3)
		for _, adapter := range []string{"goredis", "rueidis"} {
			r := e.run("--adapter", adapter, "--redis", "redis://"+c.Addrs[0], "inspect", "x")
			if r.code != exitConfig || !strings.Contains(r.stderr, "is a Redis Cluster node") || !strings.Contains(r.stderr, "use --cluster") {
				t.Errorf("%s: %v", adapter, r)
			}
			// Given as a Cluster, it works: a lock held on some master is listed.
			ce := &env{t: t, dir: t.TempDir(), vars: append(e.vars, "DISGO_CLUSTER="+strings.Join(c.Addrs, ","), "DISGO_ADAPTER="+adapter)}
			var procs []*proc
			for _, k := range []string{"k1", "k2", "k3", "k4"} {
				procs = append(procs, ce.start("run", "--lease", "1s", "--owner", "o-"+k, k, "sh", "-c", fmt.Sprintf("echo %s >> up; exec sleep 60", k)))
			}
			waitFor(t, "four holders", func() bool { return strings.Count(ce.read("up"), "\n") == 4 })
			r = ce.run("list")
			if r.code != 0 || strings.Count(r.stdout, "\n") != 5 {
				t.Errorf("%s: list on the Cluster: %v", adapter, r)
			}
			if v := ce.inspectJSON("k3"); v["owner"] != "o-k3" {
				t.Errorf("%s: inspect on the Cluster: %v", adapter, v)
			}
			if r := ce.run("release", "--force", "k1"); r.code != 0 {
				t.Errorf("%s: release --force on the Cluster: %v", adapter, r)
			}
			if r := procs[0].wait(t); r.code != exitLost {
				t.Errorf("%s: the holder of k1 after release --force: %v", adapter, r)
			}
			for _, p := range procs[1:] {
				_ = p.cmd.Process.Signal(syscall.SIGTERM)
				p.wait(t)
			}
		}
	})
	t.Run("ACLDenied", func(t *testing.T) {
		srv := redistest.Start(t)
		admin := redis.NewClient(&redis.Options{Addr: srv.Addr})
		defer admin.Close()
		// The documented locking rules, without +scan: list is refused.
		rules := append([]string{"on", ">pw"}, strings.Fields(rediscore.ACLRules("disgo"))...)
		args := []any{"ACL", "SETUSER", "locker"}
		for _, r := range rules {
			args = append(args, r)
		}
		if err := admin.Do(context.Background(), args...).Err(); err != nil {
			t.Fatal(err)
		}
		u := "redis://locker:pw@" + srv.Addr
		r := e.run("--redis", u, "list")
		if r.code != exitNoPerm || !strings.Contains(r.stderr, "NOPERM") || !strings.Contains(r.stderr, "README") {
			t.Errorf("list without +scan: %v", r)
		}
		if r := e.run("--redis", u, "inspect", "x"); r.code != 0 {
			t.Errorf("inspect with the locking rules: %v", r)
		}
		if r := e.run("--redis", "redis://locker:wrong@"+srv.Addr, "inspect", "x"); r.code != exitNoPerm || !strings.Contains(r.stderr, "authentication failed") {
			t.Errorf("wrong password: %v", r)
		}
	})
}

func TestHelp(t *testing.T) {
	e := &env{t: t, dir: t.TempDir()}
	r := e.run("--help")
	if r.code != 0 {
		t.Fatalf("--help: %v", r)
	}
	for _, want := range []string{"inspect", "list", "run", "release", "watch", "--redis", "--cluster", "DISGO_REDIS", "--adapter", "75", "79", "128+N"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("--help lacks %q", want)
		}
	}
	for _, c := range commands {
		r := e.run("help", c.name)
		if r.code != 0 || !strings.Contains(r.stdout, "usage: disgo "+c.name) {
			t.Errorf("help %s: %v", c.name, r)
		}
		if r2 := e.run(c.name, "--help"); r2.code != 0 || r2.stdout != r.stdout {
			t.Errorf("%s --help differs from help %s: %v", c.name, c.name, r2)
		}
	}
	if r := e.run("help", "run"); !strings.Contains(r.stdout, "--grace") || !strings.Contains(r.stdout, "--wait") {
		t.Errorf("help run lacks its flags:\n%s", r.stdout)
	}
}

func TestRunManyNeverOverlap(t *testing.T) {
	e, _ := newEnv(t, "goredis")
	var procs []*proc
	for i := range 6 {
		mode := "--fair"
		if i%2 == 1 {
			mode = "--barging"
		}
		script := fmt.Sprintf(`echo "start %[1]d" >> marks; sleep 0.05; echo "end %[1]d" >> marks`, i)
		procs = append(procs, e.start("run", mode, "shared", "--", "sh", "-c", script))
	}
	for _, p := range procs {
		if r := p.wait(t); r.code != 0 {
			t.Fatalf("run: %v", r)
		}
	}
	lines := strings.Split(strings.TrimSpace(e.read("marks")), "\n")
	if len(lines) != 12 {
		t.Fatalf("marks:\n%s", e.read("marks"))
	}
	seen := map[string]bool{}
	for i := 0; i < len(lines); i += 2 {
		id, ok := strings.CutPrefix(lines[i], "start ")
		if !ok || lines[i+1] != "end "+id || seen[id] {
			t.Fatalf("overlapping or repeated runs at line %d:\n%s", i+1, e.read("marks"))
		}
		seen[id] = true
	}
}
