package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	goredisbackend "github.com/disgolock/disgo/backend/goredis"
	"github.com/disgolock/disgo/locker"
)

// kindHolds takes, in the test process through the goredis adapter, the
// holdings TestKinds inspects: in namespace jobs, the mutex "shared" (m1),
// the read-write lock "shared" read by r1 (twice) and r2 with the writer w1
// queued, and the semaphore "pool" (limit 3) held by s1 (2 permits) and s2
// (1 permit) with s3 queued for 2.
type kindHolds struct {
	writer, sem3 chan *locker.Lock[string] // the queued callers' locks, once granted
}

func takeKinds(t *testing.T, addr string) *kindHolds {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
	st, err := goredisbackend.New(c, goredisbackend.Options{})
	if err != nil {
		t.Fatal(err)
	}
	opts := locker.Options[string]{Namespace: "jobs"}
	m, err := locker.New(st, opts)
	if err != nil {
		t.Fatal(err)
	}
	rw, err := locker.NewRW(st, opts)
	if err != nil {
		t.Fatal(err)
	}
	sem, err := locker.NewSemaphore(st, 3, opts)
	if err != nil {
		t.Fatal(err)
	}
	h := &kindHolds{writer: make(chan *locker.Lock[string], 1), sem3: make(chan *locker.Lock[string], 1)}
	done := make(chan struct{}, 2)
	t.Cleanup(func() {
		cancel()
		<-done
		<-done
		m.Close()
		rw.Close()
		sem.Close()
		_ = st.Close()
		_ = c.Close()
	})
	try := func(l *locker.Locker[string], key, owner string, o ...locker.CallOption) {
		t.Helper()
		if _, err := l.TryLock(ctx, key, 30*time.Second, append(o, locker.WithOwner(owner))...); err != nil {
			t.Fatalf("%s takes %s: %v", owner, key, err)
		}
	}
	wait := func(l *locker.Locker[string], key, owner string, out chan *locker.Lock[string], o ...locker.CallOption) {
		go func() {
			defer func() { done <- struct{}{} }()
			lk, err := l.Lock(ctx, key, patience, 30*time.Second, append(o, locker.WithOwner(owner))...)
			if err == nil {
				out <- lk
			}
		}()
	}
	try(m, "shared", "m1")
	try(rw.Read(), "shared", "r1")
	try(rw.Read(), "shared", "r1")
	try(rw.Read(), "shared", "r2")
	try(sem, "pool", "s1", locker.WithPermits(2))
	try(sem, "pool", "s2", locker.WithPermits(1))
	wait(rw.Write(), "shared", "w1", h.writer)
	wait(sem, "pool", "s3", h.sem3, locker.WithPermits(2))
	return h
}

// call runs disgo in the test process (app.main, with the environment of
// e only): the same code as the binary, without its start-up time (a
// second under -race on a loaded machine).
func (e *env) call(args ...string) result {
	e.t.Helper()
	vars := map[string]string{}
	for _, v := range e.vars {
		k, val, _ := strings.Cut(v, "=")
		vars[k] = val
	}
	var stdout, stderr bytes.Buffer
	a := &app{stdout: &stdout, stderr: &stderr, getenv: func(k string) string { return vars[k] }}
	code := a.main(args)
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

// callJSON is inspectJSON in the test process.
func (e *env) callJSON(args ...string) map[string]any {
	e.t.Helper()
	vs := jsonLines(e.t, e.call(append([]string{"inspect", "--json"}, args...)...))
	if len(vs) != 1 {
		e.t.Fatalf("inspect --json %v: %d objects", args, len(vs))
	}
	return vs[0]
}

// jsonLines decodes one JSON object per line.
func jsonLines(t *testing.T, r result) []map[string]any {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("%v", r)
	}
	var vs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var v map[string]any
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		vs = append(vs, v)
	}
	return vs
}

func TestKinds(t *testing.T) {
	for _, adapter := range []string{"goredis", "rueidis"} {
		t.Run(adapter, func(t *testing.T) {
			e, srv := newEnv(t, adapter)
			e.vars = append(e.vars, "DISGO_NAMESPACE=jobs")
			h := takeKinds(t, srv.Addr)
			waitFor(t, "w1 and s3 to queue", func() bool {
				return e.callJSON("--kind", "rwlock", "shared")["waiters"] == float64(1) &&
					e.callJSON("--kind", "semaphore", "pool")["waiters"] == float64(1)
			})

			// list: a line per lock, the mutex and the read-write lock of
			// "shared" apart.
			r := e.run("list") // the binary, end to end
			lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
			if r.code != 0 || len(lines) != 4 {
				t.Fatalf("list: %v", r)
			}
			for i, want := range []string{
				"jobs pool semaphore 3/3 permits 2 * * 1",
				"jobs shared lock m1 1 * * 0",
				"jobs shared rwlock 2 readers 3 * * 1",
			} {
				got, w := strings.Fields(lines[i+1]), strings.Fields(want)
				if len(got) != len(w) {
					t.Fatalf("list row %q, want %q", lines[i+1], want)
				}
				for j := range w {
					if w[j] != "*" && got[j] != w[j] {
						t.Fatalf("list row %q, want %q", lines[i+1], want)
					}
				}
			}
			vs := jsonLines(t, e.call("list", "--json"))
			if len(vs) != 3 || vs[0]["kind"] != "semaphore" || vs[0]["limit"] != float64(3) || vs[0]["used"] != float64(3) ||
				vs[1]["kind"] != "lock" || vs[1]["owner"] != "m1" || vs[2]["kind"] != "rwlock" || vs[2]["readers"] != float64(2) {
				t.Fatalf("list --json: %v", vs)
			}

			// inspect without --kind shows both locks of "shared".
			vs = jsonLines(t, e.call("inspect", "--json", "shared"))
			if len(vs) != 2 || vs[0]["kind"] != "lock" || vs[1]["kind"] != "rwlock" {
				t.Fatalf("inspect --json shared: %v", vs)
			}
			r = e.call("inspect", "shared")
			for _, want := range []string{"KIND        lock", "HOLDER      m1", "KIND     rwlock", "HOLDER   2 readers",
				"OWNER  MODE  HOLDS  FENCE", "\nr1     read  2      ", "\nr2     read  1      ",
				"POSITION  OWNER  WANTS  TICKET", "\n0         w1     write  "} {
				if !strings.Contains(r.stdout, want) {
					t.Fatalf("inspect shared lacks %q:\n%s", want, r)
				}
			}
			rv := e.callJSON("--kind", "rwlock", "shared")
			hs, _ := rv["holders"].([]any)
			if rv["held"] != true || rv["writer"] != "" || rv["readers"] != float64(2) || len(hs) != 2 {
				t.Fatalf("inspect --kind rwlock: %v", rv)
			}
			for _, x := range hs {
				hd := x.(map[string]any)
				f, _ := hd["fence"].(float64)
				l, _ := hd["lease_ms"].(float64)
				if hd["mode"] != "read" || f <= 0 || l <= 0 || l > 30000 || (hd["owner"] == "r1") != (hd["count"] == float64(2)) {
					t.Fatalf("rwlock holding: %v", hd)
				}
			}
			if q, _ := rv["queue"].([]any); len(q) != 1 || q[0].(map[string]any)["owner"] != "w1" || q[0].(map[string]any)["mode"] != "write" {
				t.Fatalf("rwlock queue: %v", rv["queue"])
			}
			sv := e.callJSON("--kind", "semaphore", "pool")
			hs, _ = sv["holders"].([]any)
			if sv["limit"] != float64(3) || sv["used"] != float64(3) || len(hs) != 2 ||
				hs[0].(map[string]any)["owner"] != "s1" || hs[0].(map[string]any)["permits"] != float64(2) ||
				hs[1].(map[string]any)["owner"] != "s2" || hs[1].(map[string]any)["permits"] != float64(1) {
				t.Fatalf("inspect --kind semaphore: %v", sv)
			}
			if q, _ := sv["queue"].([]any); len(q) != 1 || q[0].(map[string]any)["owner"] != "s3" || q[0].(map[string]any)["permits"] != float64(2) {
				t.Fatalf("semaphore queue: %v", sv["queue"])
			}
			r = e.call("inspect", "--kind", "semaphore", "pool")
			for _, want := range []string{"PERMITS  3 of 3 in use", "HOLDERS  2", "OWNER  PERMITS  HOLDS", "\n0         s3     2 permits  "} {
				if !strings.Contains(r.stdout, want) {
					t.Fatalf("inspect --kind semaphore lacks %q:\n%s", want, r)
				}
			}
			// A kind asked for is shown free; an unknown kind is bad usage.
			if v := e.callJSON("--kind", "semaphore", "shared"); v["held"] != false || v["kind"] != "semaphore" {
				t.Fatalf("inspect --kind semaphore of a free name: %v", v)
			}
			for _, args := range [][]string{{"inspect", "--kind", "mutex", "shared"}, {"release", "--force", "--kind", "x", "shared"}, {"watch", "--kind", "", "--kind", "x", "shared"}} {
				if r := e.call(args...); r.code != exitUsage || !strings.Contains(r.stderr, "rwlock") {
					t.Fatalf("%v: %v", args, r)
				}
			}
			vs = jsonLines(t, e.call("watch", "--json", "--count", "1", "--kind", "rwlock", "shared"))
			if len(vs) != 1 || vs[0]["kind"] != "rwlock" || vs[0]["time"] == nil || vs[0]["readers"] != float64(2) {
				t.Fatalf("watch --kind rwlock: %v", vs)
			}

			// release --force frees the mutex by default, and the other
			// kinds with --kind only.
			r = e.call("release", "--force", "shared")
			if r.code != 0 || !strings.Contains(r.stdout, "freed shared (namespace jobs) (was: owner m1, fence ") {
				t.Fatalf("release --force shared: %v", r)
			}
			r = e.call("release", "--force", "shared")
			if r.code != exitFailure || !strings.Contains(r.stderr, "free already") || !strings.Contains(r.stderr, "add --kind rwlock") {
				t.Fatalf("release --force of the free mutex: %v", r)
			}
			if v := e.callJSON("--kind", "rwlock", "shared"); v["readers"] != float64(2) {
				t.Fatalf("the rwlock after the mutex's release: %v", v)
			}
			vs = jsonLines(t, e.run("release", "--force", "--json", "--kind", "rwlock", "shared")) // the binary
			if f, _ := vs[0]["former"].(string); vs[0]["freed"] != true || vs[0]["kind"] != "rwlock" ||
				!strings.Contains(f, "owner r1 (read), fence ") || !strings.Contains(f, "owner r2 (read), fence ") {
				t.Fatalf("release --force --kind rwlock: %v", vs)
			}
			// The queued writer gets it.
			select {
			case <-h.writer:
			case <-time.After(patience):
				t.Fatal("w1 did not get the write lock")
			}
			r = e.call("list", "--match", "shared")
			if f := strings.Fields(r.stdout); r.code != 0 || len(f) != 16 || f[10] != "rwlock" || f[11] != "w1" {
				t.Fatalf("list after the writer got it: %v", r)
			}
			if v := e.callJSON("--kind", "rwlock", "shared"); v["writer"] != "w1" || v["readers"] != float64(0) {
				t.Fatalf("inspect after the writer got it: %v", v)
			}

			r = e.call("release", "--force", "--kind", "semaphore", "pool")
			if r.code != 0 || !strings.Contains(r.stdout, "freed semaphore pool (namespace jobs) (was: owner s1 (2 permits), fence ") ||
				!strings.Contains(r.stdout, "owner s2 (1 permit), fence ") {
				t.Fatalf("release --force --kind semaphore: %v", r)
			}
			select {
			case <-h.sem3:
			case <-time.After(patience):
				t.Fatal("s3 did not get its permits")
			}
			if v := e.callJSON("pool"); v["kind"] != "semaphore" || v["used"] != float64(2) {
				t.Fatalf("inspect pool after s3 got its permits: %v", v)
			}
			if r := e.call("release", "--force", "--kind", "semaphore", "pool"); r.code != 0 {
				t.Fatalf("release --force of s3's permits: %v", r)
			}
			r = e.call("release", "--force", "--kind", "semaphore", "pool")
			if r.code != exitFailure || !strings.Contains(r.stderr, `the semaphore "pool" is free already`) {
				t.Fatalf("release --force of a free semaphore: %v", r)
			}
		})
	}
}

func TestKindsHelp(t *testing.T) {
	e := &env{t: t}
	for _, c := range []struct {
		args  []string
		wants []string
	}{
		{[]string{"--help"}, []string{"Lock kinds:", "rwlock     the read-write lock of locker.NewRW", "--kind semaphore"}},
		{[]string{"help", "inspect"}, []string{"--kind KIND", "semaphore  the counting semaphore", `"writer"`, `"limit"`, `"holders"`, "WANTS"}},
		{[]string{"help", "release"}, []string{"--force [--kind KIND] NAME", "The default is lock, the mutex"}},
		{[]string{"help", "watch"}, []string{"--kind KIND"}},
		{[]string{"help", "list"}, []string{"N readers", "USED/LIMIT"}},
	} {
		r := e.call(c.args...)
		for _, w := range c.wants {
			if r.code != 0 || !strings.Contains(r.stdout, w) {
				t.Errorf("%v lacks %q: %v", c.args, w, r)
			}
		}
	}
}
