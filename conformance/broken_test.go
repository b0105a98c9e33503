package conformance_test

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/backend/memory"
	"github.com/disgolock/disgo/conformance"
	"github.com/disgolock/disgo/locker"
	"github.com/disgolock/disgo/renewer"
)

// breakEnv names the breakage a re-executed test binary runs the suite on.
const breakEnv = "DISGO_CONFORMANCE_BREAK"

// breakage is a deliberately broken backend and the subtests that must
// catch it.
type breakage struct {
	kind string
	run  string   // the subtest to run, "<Group>/<Test>"
	fail []string // the subtests that must fail
}

var breakages = []breakage{
	{"release-ignores-owner", "Release/ByNonHolder", []string{"Release/ByNonHolder"}},
	{"no-reentrancy", "Reentrancy/CountsUpAndDown", []string{"Reentrancy/CountsUpAndDown/Fair", "Reentrancy/CountsUpAndDown/Barging"}},
	{"fence-repeats", "Fencing/Increasing", []string{"Fencing/Increasing"}},
	{"lifo-queue", "Fairness/ArrivalOrder", []string{"Fairness/ArrivalOrder"}},
	{"leave-ignored", "Fairness/DepartingWaiterKeepsOrder", []string{"Fairness/DepartingWaiterKeepsOrder"}},
	{"extend-always-held", "Renewal/LossOnDelete", []string{"Renewal/LossOnDelete"}},
	{"deaf-notifier", "Spin/WokenByRelease", []string{"Spin/WokenByRelease/Fair", "Spin/WokenByRelease/Barging"}},
	{"lease-ignored", "Spin/WokenByExpiry", []string{"Spin/WokenByExpiry/Fair", "Spin/WokenByExpiry/Barging"}},
}

// TestBrokenBackends proves that the suite rejects broken backends: for
// each breakage it re-executes this test binary on a memory store with
// that breakage, running only the subtests that should catch it, and
// requires them to fail; a control run of the same subtests on the intact
// store must pass.
func TestBrokenBackends(t *testing.T) {
	if runChild(t) {
		return
	}
	for _, b := range breakages {
		t.Run(b.kind, func(t *testing.T) {
			t.Parallel()
			out, err := reexec(t, b.kind, runPattern([]string{b.run}))
			var exit *exec.ExitError
			require.ErrorAs(t, err, &exit, "the suite passed on a backend with breakage %q:\n%s", b.kind, out)
			for _, f := range b.fail {
				require.Contains(t, out, "--- FAIL: TestBrokenBackends/"+f+" (", "breakage %q was not caught by %s:\n%s", b.kind, f, out)
			}
		})
	}
	t.Run("control", func(t *testing.T) {
		t.Parallel()
		var runs []string
		for _, b := range breakages {
			runs = append(runs, b.run)
		}
		out, err := reexec(t, "none", runPattern(runs))
		require.NoError(t, err, "the suite failed on the intact store:\n%s", out)
		for _, b := range breakages {
			for _, f := range b.fail {
				require.Contains(t, out, "--- PASS: TestBrokenBackends/"+f+" (", "the control run did not run %s:\n%s", f, out)
			}
		}
	})
}

// runPattern returns the -test.run pattern selecting the given subtests
// ("<Group>/<Test>") of TestBrokenBackends.
func runPattern(subtests []string) string {
	var groups, tests []string
	for _, s := range subtests {
		g, tc, _ := strings.Cut(s, "/")
		groups, tests = append(groups, g), append(tests, tc)
	}
	return "^TestBrokenBackends$/^(" + strings.Join(groups, "|") + ")$/^(" + strings.Join(tests, "|") + ")$"
}

// TestReducedHarnesses proves that the suite copes with less: a backend
// with nothing but locker.Backend and a harness without hooks passes,
// skipping exactly the subtests that need what is missing with a message
// naming it; a backend without locker.Inspector (waiters staggered instead
// of observed) passes the fairness and spin tests.
func TestReducedHarnesses(t *testing.T) {
	if runChild(t) {
		return
	}
	const (
		queue    = "does not implement locker.Queue"
		notifier = "does not implement locker.Notifier"
		kill     = "Client.Kill is nil"
		wipe     = "Harness.Wipe is nil"
		keys     = "Harness.Keys is nil"
	)
	for _, r := range []struct {
		kind, pattern string
		skips         map[string]string // subtest -> skip message
	}{
		{"minimal", "^TestReducedHarnesses$", map[string]string{
			"MutualExclusion/Fair":            queue,
			"Reentrancy/CountsUpAndDown/Fair": queue,
			"Fairness/ArrivalOrder":           queue,
			"Fairness/DeadWaiterEvicted":      queue,
			"Fairness/GrantMessageLost":       queue,
			"Fairness/GrantToDeadWaiter":      queue,
			"Fairness/GiveUpRacingRelease":    queue,
			"Spin/WokenByRelease/Barging":     notifier,
			"Spin/WokenByHolderDeath/Barging": kill,
			"Renewal/LossOnDelete":            wipe,
			"Renewal/LossOnSteal":             wipe,
			"Renewal/LossWhenCutOff":          kill,
			"Fencing/AcrossEviction":          wipe,
			"BadInput/NothingWritten":         keys,
			"Leaks/Subscriptions":             notifier,
			"Leaks/Keys":                      keys,
		}},
		{"uninspectable", "^TestReducedHarnesses$/^(Fairness|Spin)$", nil},
	} {
		t.Run(r.kind, func(t *testing.T) {
			t.Parallel()
			out, err := reexec(t, r.kind, r.pattern)
			require.NoError(t, err, "the suite failed on the %s harness:\n%s", r.kind, out)
			require.Contains(t, out, "--- PASS: TestReducedHarnesses/", "no subtest passed:\n%s", out)
			for name, msg := range r.skips {
				require.Contains(t, out, "--- SKIP: TestReducedHarnesses/"+name+" (", "%s was not skipped:\n%s", name, out)
				require.Contains(t, out, msg, "no skip said %q:\n%s", msg, out)
			}
			if r.skips == nil {
				require.NotContains(t, out, "--- SKIP", "subtests were skipped:\n%s", out)
			}
		})
	}
}

// runChild runs the suite on the harness named by breakEnv, when it is set
// (in a re-executed test binary), and reports whether it did.
func runChild(t *testing.T) bool {
	kind := os.Getenv(breakEnv)
	if kind == "" {
		return false
	}
	conformance.Run(t, harness(kind))
	return true
}

// reexec re-executes the test binary on the harness named kind.
func reexec(t *testing.T, kind, pattern string) (string, error) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run="+pattern, "-test.count=1", "-test.v", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), breakEnv+"="+kind)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// harness describes a memory store to the suite: "minimal", a bare
// locker.Backend without any hook; "uninspectable", a Backend, Queue and
// Notifier without Inspector or subscription counts; otherwise clients
// with breakage kind ("none": intact).
func harness(kind string) conformance.Harness {
	s := memory.New()
	switch kind {
	case "minimal":
		return conformance.Harness{NewClient: func(testing.TB) conformance.Client {
			return conformance.Client{Backend: struct{ locker.Backend }{s.Client()}}
		}}
	case "uninspectable":
		return conformance.Harness{NewClient: func(testing.TB) conformance.Client {
			c := s.Client()
			return conformance.Client{Backend: struct {
				locker.Backend
				locker.Queue
				locker.Notifier
			}{c, c, c}, Kill: c.Kill}
		}}
	}
	lifo := &lifoQueues{q: make(map[string][]string)}
	return conformance.Harness{
		NewClient: func(testing.TB) conformance.Client {
			c := s.Client()
			return conformance.Client{Backend: &broken{Client: c, kind: kind, lifo: lifo}, Kill: c.Kill}
		},
		Keys: func(_ context.Context, substr string) ([]string, error) { return s.Keys(substr), nil },
		Wipe: func(_ context.Context, name string) error {
			s.Wipe(name)
			return nil
		},
	}
}

// broken is a memory client with one breakage.
type broken struct {
	*memory.Client
	kind string
	lifo *lifoQueues
}

func (b *broken) Acquire(ctx context.Context, req locker.AcquireRequest) (locker.AcquireResult, error) {
	return b.acquire(ctx, req, func(r locker.AcquireRequest) (locker.AcquireResult, error) { return b.Client.Acquire(ctx, r) })
}

func (b *broken) AcquireFair(ctx context.Context, req locker.AcquireRequest, waiterTTL time.Duration) (locker.AcquireResult, error) {
	if b.kind == "lifo-queue" {
		return b.lifo.acquire(ctx, b.Client, req, waiterTTL)
	}
	return b.acquire(ctx, req, func(r locker.AcquireRequest) (locker.AcquireResult, error) {
		return b.Client.AcquireFair(ctx, r, waiterTTL)
	})
}

// acquire applies the acquisition breakages around do.
func (b *broken) acquire(ctx context.Context, req locker.AcquireRequest, do func(locker.AcquireRequest) (locker.AcquireResult, error)) (locker.AcquireResult, error) {
	switch b.kind {
	case "no-reentrancy":
		st, err := b.Client.Inspect(ctx, req.Name)
		if err != nil {
			return locker.AcquireResult{}, err
		}
		if st.Owner == req.Owner {
			return locker.AcquireResult{TTL: st.TTL, Position: -1}, nil
		}
	case "lease-ignored":
		req.Lease *= 1000
	}
	res, err := do(req)
	if b.kind == "fence-repeats" && res.Acquired {
		res.Fence = 1
	}
	return res, err
}

func (b *broken) Release(ctx context.Context, name, owner, ticket string) (bool, int, error) {
	if b.kind == "release-ignores-owner" {
		if st, err := b.Client.Inspect(ctx, name); err == nil && st.Owner != "" {
			owner, ticket = st.Owner, ""
		}
	}
	return b.Client.Release(ctx, name, owner, ticket)
}

func (b *broken) Extend(ctx context.Context, name, owner string, lease time.Duration) (bool, error) {
	held, err := b.Client.Extend(ctx, name, owner, lease)
	return held || b.kind == "extend-always-held", err
}

func (b *broken) ExtendBatch(ctx context.Context, batch []renewer.Extension) error {
	err := b.Client.ExtendBatch(ctx, batch)
	if b.kind == "extend-always-held" {
		for i := range batch {
			batch[i].Held = true
		}
	}
	return err
}

func (b *broken) Leave(ctx context.Context, name, ticket string) error {
	switch b.kind {
	case "leave-ignored":
		return nil
	case "lifo-queue":
		b.lifo.leave(name, ticket)
	}
	return b.Client.Leave(ctx, name, ticket)
}

func (b *broken) Subscribe(ctx context.Context, name, ticket string) (locker.Subscription, error) {
	sub, err := b.Client.Subscribe(ctx, name, ticket)
	if err != nil {
		return nil, err
	}
	return b.deafen(sub), nil
}

// SubscribeActive overrides the one promoted from memory.Client, which
// would bypass the breakage.
func (b *broken) SubscribeActive(name, ticket string) (locker.Subscription, bool) {
	sub, ok := b.Client.SubscribeActive(name, ticket)
	if !ok {
		return nil, false
	}
	return b.deafen(sub), true
}

// deafen makes sub deaf for the deaf-notifier breakage.
func (b *broken) deafen(sub locker.Subscription) locker.Subscription {
	if b.kind != "deaf-notifier" {
		return sub
	}
	return deafSubscription{sub, make(chan struct{})}
}

func (b *broken) Inspect(ctx context.Context, name string) (locker.State, error) {
	st, err := b.Client.Inspect(ctx, name)
	switch {
	case b.kind == "lifo-queue":
		st.Waiters = b.lifo.len(name)
	case b.kind == "fence-repeats" && st.Count > 0:
		st.Fence = 1
	}
	return st, err
}

// deafSubscription holds a real subscription but is never woken.
type deafSubscription struct {
	locker.Subscription
	never chan struct{}
}

func (d deafSubscription) Wake() <-chan struct{} { return d.never }

// lifoQueues is a fair queue that serves the newest waiter first, shared by
// all clients of a store.
type lifoQueues struct {
	mu sync.Mutex
	q  map[string][]string
}

func (l *lifoQueues) acquire(ctx context.Context, c *memory.Client, req locker.AcquireRequest, waiterTTL time.Duration) (locker.AcquireResult, error) {
	st, err := c.Inspect(ctx, req.Name)
	if err != nil {
		return locker.AcquireResult{}, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	q := l.q[req.Name]
	if st.Owner == req.Owner || st.Count == 0 && (len(q) == 0 || q[len(q)-1] == req.Ticket) {
		res, err := c.Acquire(ctx, req)
		if err == nil && res.Acquired {
			l.q[req.Name] = slices.DeleteFunc(q, func(t string) bool { return t == req.Ticket })
		}
		return res, err
	}
	pos := slices.Index(q, req.Ticket)
	if pos < 0 && waiterTTL > 0 {
		pos = len(q)
		l.q[req.Name] = append(q, req.Ticket)
	}
	res := locker.AcquireResult{TTL: -1, Position: pos}
	if st.Count > 0 {
		res.TTL = st.TTL
	}
	return res, nil
}

func (l *lifoQueues) leave(name, ticket string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.q[name] = slices.DeleteFunc(l.q[name], func(t string) bool { return t == ticket })
}

func (l *lifoQueues) len(name string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.q[name])
}
