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
	"github.com/disgolock/disgo/locker/driver"
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

	// Stalled processes.
	{"stale-grant-claimable", "Stall/StaleGrant", []string{"Stall/StaleGrant"}},
	{"lease-kept-by-connection", "Stall/HolderPastLease", []string{"Stall/HolderPastLease"}},
	{"place-kept-by-connection", "Stall/WaiterPastHeartbeat", []string{"Stall/WaiterPastHeartbeat"}},

	// Leases.
	{"extend-unit", "Renewal/ExtendedLeaseLength", []string{"Renewal/ExtendedLeaseLength"}},
	{"renewal-unit", "Renewal/KilledHolderFreed", []string{"Renewal/KilledHolderFreed"}},
	{"reentry-shortens", "Reentrancy/NeverShortensLease", []string{"Reentrancy/NeverShortensLease/Fair", "Reentrancy/NeverShortensLease/Barging"}},
	{"grant-lease-from-join", "Renewal/DeadlineBeforeRequest", []string{"Renewal/DeadlineBeforeRequest/Fair"}},
	{"release-ignores-ticket", "Release/TicketScoped", []string{"Release/TicketScoped"}},

	// The queue and its wake-ups.
	{"reuse-freed-slot", "Fairness/OrderAtHeadAndTail", []string{"Fairness/OrderAtHeadAndTail"}},
	{"wake-lost-after-head-left", "Fairness/WokenAfterHeadLeft", []string{"Fairness/WokenAfterHeadLeft"}},
	{"grant-to-lapsed-head", "Fairness/DeadHeadSkipped", []string{"Fairness/DeadHeadSkipped"}},
	{"queue-lingers", "Fairness/KilledWaiterLeavesNoKeys", []string{"Fairness/KilledWaiterLeavesNoKeys"}},
	{"wakes-every-waiter", "Fairness/WakeUpsToOwnProcess", []string{"Fairness/WakeUpsToOwnProcess"}},
	{"first-process-only", "Fairness/WakeUpsToOwnProcess", []string{"Fairness/WakeUpsToOwnProcess"}},
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
// with nothing but driver.Backend and a harness without hooks passes,
// skipping exactly the subtests that need what is missing with a message
// naming it; a backend without driver.Inspector (waiters staggered instead
// of observed) passes the fairness, spin and stall tests.
func TestReducedHarnesses(t *testing.T) {
	if runChild(t) {
		return
	}
	const (
		queue    = "does not implement driver.Queue"
		notifier = "does not implement driver.Notifier"
		kill     = "Client.Kill is nil"
		wipe     = "Harness.Wipe is nil"
		keys     = "Harness.Keys is nil"
		stall    = "Client.Stall is nil"
		rw       = "does not implement driver.RWLocker"
		sem      = "does not implement driver.Semaphorer"
	)
	for _, r := range []struct {
		kind, pattern string
		skips         map[string]string // subtest -> skip message
	}{
		{"minimal", "^TestReducedHarnesses$", map[string]string{
			"MutualExclusion/Fair":               queue,
			"Reentrancy/CountsUpAndDown/Fair":    queue,
			"Fairness/ArrivalOrder":              queue,
			"Fairness/DeadWaiterEvicted":         queue,
			"Fairness/GrantMessageLost":          queue,
			"Fairness/GrantToDeadWaiter":         queue,
			"Fairness/GiveUpRacingRelease":       queue,
			"Fairness/OrderAtHeadAndTail":        queue,
			"Fairness/DeadHeadSkipped":           queue,
			"Fairness/KilledWaiterLeavesNoKeys":  keys,
			"Fairness/WokenAfterHeadLeft":        queue,
			"Fairness/WakeUpsToOwnProcess":       queue,
			"Reentrancy/NeverShortensLease/Fair": queue,
			"Spin/WokenByRelease/Barging":        notifier,
			"Spin/WokenByHolderDeath/Barging":    kill,
			"Renewal/LossOnDelete":               wipe,
			"Renewal/LossOnSteal":                wipe,
			"Renewal/LossWhenCutOff":             kill,
			"Renewal/KilledHolderFreed":          kill,
			"Renewal/DeadlineBeforeRequest/Fair": queue,
			"Fencing/AcrossEviction":             wipe,
			"Stall/StaleGrant":                   stall,
			"Stall/HolderPastLease":              stall,
			"Stall/WaiterPastHeartbeat":          stall,
			"BadInput/NothingWritten":            keys,
			"Leaks/Subscriptions":                notifier,
			"Leaks/Keys":                         keys,
			"RWLock/ReadersShare/Barging":        rw,
			"RWLock/Exclusion/Barging":           rw,
			"RWLock/FairOrder":                   rw,
			"RWLock/Fencing":                     rw,
			"RWLock/TicketScoped":                rw,
			"RWLock/ApartFromOtherKinds":         rw,
			"RWLock/BadInput":                    rw,
			"RWLock/NoKeysLeft":                  keys,
			"Semaphore/PermitsShared/Barging":    sem,
			"Semaphore/Exclusion/Barging":        sem,
			"Semaphore/FIFO":                     sem,
			"Semaphore/Fencing":                  sem,
			"Semaphore/TicketScoped":             sem,
			"Semaphore/ApartFromOtherKinds":      sem,
			"Semaphore/BadInput":                 sem,
			"Semaphore/NoKeysLeft":               keys,
		}},
		{"uninspectable", "^TestReducedHarnesses$/^(Fairness|Spin|Stall)$", nil},
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
// driver.Backend without any hook; "uninspectable", a Backend, Queue and
// Notifier without Inspector or subscription counts; otherwise clients
// with breakage kind ("none": intact).
func harness(kind string) conformance.Harness {
	s := memory.New()
	keys := func(_ context.Context, substr string) ([]string, error) { return s.Keys(substr), nil }
	switch kind {
	case "minimal":
		return conformance.Harness{NewClient: func(testing.TB) conformance.Client {
			return conformance.Client{Backend: struct{ driver.Backend }{s.Client()}}
		}}
	case "uninspectable":
		return conformance.Harness{
			NewClient: func(testing.TB) conformance.Client {
				c := s.Client()
				return conformance.Client{Backend: struct {
					driver.Backend
					driver.Queue
					driver.Notifier
				}{c, c, c}, Kill: c.Kill, Stall: c.Stall}
			},
			Keys: keys,
		}
	}
	sh := newShared(s, kind)
	return conformance.Harness{
		NewClient: func(testing.TB) conformance.Client {
			c := s.Client()
			b := &broken{Client: c, kind: kind, sh: sh}
			return conformance.Client{Backend: b, Kill: c.Kill, Stall: b.Stall, Subscriptions: c.ActiveSubscriptions}
		},
		Keys: keys,
		Wipe: func(_ context.Context, name string) error {
			s.Wipe(name)
			return nil
		},
	}
}

// shared is the state of a broken store that its clients share.
type shared struct {
	store  *memory.Store // for calls on nobody's behalf: never stalled
	queues *sliceQueues  // lifo-queue, reuse-freed-slot

	mu       sync.Mutex
	grants   map[string]driver.Subscription  // name+ticket -> the ticket's subscription (stale-grant-claimable)
	taps     map[string][]*tapSub            // name -> live tapped subscriptions, oldest first
	first    map[string]*broken              // name -> the client that subscribed to it first (first-process-only)
	heads    map[string]string               // name -> the ticket last answered at the head (wake-lost-after-head-left)
	headLeft map[string]bool                 // name -> its head left: the next wake-up is lost
	joins    map[string]join                 // name+owner -> when it joined the queue (grant-lease-from-join)
	beats    map[string]map[string]time.Time // name -> ticket -> heartbeat deadline (grant-to-lapsed-head, queue-lingers)
}

// join is when a waiter joined the queue, and the lease of a grant to it.
type join struct {
	at    time.Time
	grant time.Duration
}

func newShared(s *memory.Store, kind string) *shared {
	return &shared{
		store:    s,
		queues:   &sliceQueues{kind: kind, q: make(map[string][]string), freed: make(map[string][]int), deadline: make(map[string]map[string]time.Time)},
		grants:   make(map[string]driver.Subscription),
		taps:     make(map[string][]*tapSub),
		first:    make(map[string]*broken),
		heads:    make(map[string]string),
		headLeft: make(map[string]bool),
		joins:    make(map[string]join),
		beats:    make(map[string]map[string]time.Time),
	}
}

func key2(a, b string) string { return a + "\x00" + b }

// broken is a memory client with one breakage.
type broken struct {
	*memory.Client
	kind string
	sh   *shared

	kv kindViews // its read-write lock and semaphore views

	mu     sync.Mutex
	holds  map[string]hold  // name+owner -> what this client holds (lease-kept-by-connection)
	places map[string]place // name+ticket -> where this client waits (place-kept-by-connection)
}

type hold struct {
	name, owner string
	lease       time.Duration
}

type place struct {
	req driver.AcquireRequest
	ttl time.Duration
}

func (b *broken) Acquire(ctx context.Context, req driver.AcquireRequest) (driver.AcquireResult, error) {
	res, err := b.acquire(ctx, req, func(r driver.AcquireRequest) (driver.AcquireResult, error) { return b.Client.Acquire(ctx, r) })
	b.acquired(req, 0, res, err)
	return res, err
}

func (b *broken) AcquireFair(ctx context.Context, req driver.AcquireRequest, waiterTTL time.Duration) (driver.AcquireResult, error) {
	var (
		res driver.AcquireResult
		err error
	)
	switch b.kind {
	case "lifo-queue", "reuse-freed-slot":
		res, err = b.sh.queues.acquire(ctx, b.Client, req, waiterTTL)
	case "grant-to-lapsed-head", "queue-lingers":
		res, err = b.stretched(ctx, req, waiterTTL)
	default:
		res, err = b.acquire(ctx, req, func(r driver.AcquireRequest) (driver.AcquireResult, error) {
			return b.Client.AcquireFair(ctx, r, waiterTTL)
		})
	}
	if b.kind == "stale-grant-claimable" && err == nil && !res.Acquired {
		// A grant, once made, is claimed, though it lapsed and another
		// owner holds the lock since.
		b.sh.mu.Lock()
		g := b.sh.grants[key2(req.Name, req.Ticket)]
		b.sh.mu.Unlock()
		if g != nil {
			if f, ok := g.Granted(); ok {
				res = driver.AcquireResult{Acquired: true, Fence: f, Count: 1, Position: -1}
			}
		}
	}
	b.acquired(req, waiterTTL, res, err)
	return res, err
}

// acquire applies the acquisition breakages around do.
func (b *broken) acquire(ctx context.Context, req driver.AcquireRequest, do func(driver.AcquireRequest) (driver.AcquireResult, error)) (driver.AcquireResult, error) {
	switch b.kind {
	case "no-reentrancy":
		st, err := b.Client.Inspect(ctx, req.Name)
		if err != nil {
			return driver.AcquireResult{}, err
		}
		if st.Owner == req.Owner {
			return driver.AcquireResult{TTL: st.TTL, Position: -1}, nil
		}
	case "lease-ignored":
		req.Lease *= 1000
	}
	res, err := do(req)
	switch {
	case err != nil:
	case b.kind == "fence-repeats" && res.Acquired:
		res.Fence = 1
	case b.kind == "reentry-shortens" && res.Acquired && res.Count > 1:
		// A re-entry sets the lease asked, shorter or not.
		if _, err := b.Client.Extend(ctx, req.Name, req.Owner, req.Lease); err != nil {
			return driver.AcquireResult{}, err
		}
	}
	return res, err
}

// acquired keeps track of an acquiring call's outcome.
func (b *broken) acquired(req driver.AcquireRequest, waiterTTL time.Duration, res driver.AcquireResult, err error) {
	if err != nil {
		return
	}
	b.mu.Lock()
	if b.holds == nil {
		b.holds, b.places = make(map[string]hold), make(map[string]place)
	}
	if res.Acquired {
		b.holds[key2(req.Name, req.Owner)] = hold{req.Name, req.Owner, req.Lease}
		delete(b.places, key2(req.Name, req.Ticket))
	} else if waiterTTL > 0 {
		b.places[key2(req.Name, req.Ticket)] = place{req, waiterTTL}
	}
	b.mu.Unlock()

	sh := b.sh
	sh.mu.Lock()
	defer sh.mu.Unlock()
	switch {
	case res.Acquired:
		if sh.heads[req.Name] == req.Ticket {
			delete(sh.heads, req.Name)
		}
		delete(sh.joins, key2(req.Name, req.Owner))
	case waiterTTL > 0:
		if res.Position == 0 {
			sh.heads[req.Name] = req.Ticket
		}
		if _, ok := sh.joins[key2(req.Name, req.Owner)]; !ok {
			sh.joins[key2(req.Name, req.Owner)] = join{time.Now(), min(req.Lease, waiterTTL)}
		}
	}
}

// stretched is a fair attempt on a store whose waiters lapse in the queue
// later than they should, waiterTTL × factor after their last heartbeat:
// the broken client evicts lapsed waiters itself on every attempt (and,
// for queue-lingers, on every release), but the store keeps their queue
// records that long, and for grant-to-lapsed-head a release still hands
// the lock to a head that lapsed.
func (b *broken) stretched(ctx context.Context, req driver.AcquireRequest, waiterTTL time.Duration) (driver.AcquireResult, error) {
	b.evictLapsed(ctx, req.Name, req.Ticket)
	if waiterTTL <= 0 {
		return b.Client.AcquireFair(ctx, req, 0)
	}
	factor := time.Duration(3)
	if b.kind == "queue-lingers" {
		factor = 1000
	}
	r := req
	r.Lease = min(req.Lease, waiterTTL) // so that a grant lasts min(lease, waiterTTL), as it should
	res, err := b.Client.AcquireFair(ctx, r, waiterTTL*factor)
	if err != nil {
		return res, err
	}
	sh := b.sh
	sh.mu.Lock()
	if sh.beats[req.Name] == nil {
		sh.beats[req.Name] = make(map[string]time.Time)
	}
	if res.Acquired {
		delete(sh.beats[req.Name], req.Ticket)
	} else {
		sh.beats[req.Name][req.Ticket] = time.Now().Add(waiterTTL)
	}
	sh.mu.Unlock()
	if res.Acquired && r.Lease < req.Lease {
		st, err := b.Client.Inspect(ctx, req.Name)
		if err != nil {
			return driver.AcquireResult{}, err
		}
		if st.Owner == req.Owner && st.TTL < req.Lease {
			if _, err := b.Client.Extend(ctx, req.Name, req.Owner, req.Lease); err != nil {
				return driver.AcquireResult{}, err
			}
		}
	}
	return res, nil
}

// evictLapsed removes the waiters of name whose heartbeat lapsed, except.
func (b *broken) evictLapsed(ctx context.Context, name, except string) {
	sh := b.sh
	var lapsed []string
	now := time.Now()
	sh.mu.Lock()
	for t, deadline := range sh.beats[name] {
		if t != except && now.After(deadline) {
			lapsed = append(lapsed, t)
			delete(sh.beats[name], t)
		}
	}
	sh.mu.Unlock()
	for _, t := range lapsed {
		_ = sh.store.Leave(ctx, name, t)
	}
}

func (b *broken) Release(ctx context.Context, name, owner, ticket string) (bool, int, error) {
	switch b.kind {
	case "release-ignores-owner":
		if st, err := b.Client.Inspect(ctx, name); err == nil && st.Owner != "" {
			owner, ticket = st.Owner, ""
		}
	case "release-ignores-ticket":
		ticket = ""
	case "queue-lingers":
		b.evictLapsed(ctx, name, "")
	}
	held, n, err := b.Client.Release(ctx, name, owner, ticket)
	if err != nil || !held || n > 0 {
		return held, n, err
	}
	b.mu.Lock()
	delete(b.holds, key2(name, owner))
	b.mu.Unlock()
	switch b.kind {
	case "lifo-queue", "reuse-freed-slot":
		if head, ok := b.sh.queues.head(name); ok {
			b.sh.wakeTicket(name, head)
		}
	case "grant-lease-from-join":
		b.shortenGrant(ctx, name, owner)
	case "wakes-every-waiter":
		b.sh.wakeAll(name)
	}
	return held, n, err
}

// shortenGrant makes the grant a release made end where it would if its
// lease counted from the moment the grantee joined the queue.
func (b *broken) shortenGrant(ctx context.Context, name, released string) {
	st, err := b.Client.Inspect(ctx, name)
	if err != nil || st.Count != 1 || st.Owner == "" || st.Owner == released {
		return
	}
	sh := b.sh
	sh.mu.Lock()
	j, ok := sh.joins[key2(name, st.Owner)]
	delete(sh.joins, key2(name, st.Owner))
	sh.mu.Unlock()
	if !ok {
		return
	}
	if left := max(time.Until(j.at.Add(j.grant)), locker.MinLease); left < st.TTL {
		_, _ = b.Client.Extend(ctx, name, st.Owner, left)
	}
}

func (b *broken) Extend(ctx context.Context, name, owner string, lease time.Duration) (bool, error) {
	if b.kind == "extend-unit" {
		lease *= 1000 // milliseconds taken for seconds
	}
	held, err := b.Client.Extend(ctx, name, owner, lease)
	b.extended(name, owner, lease, held, err)
	return held || b.kind == "extend-always-held", err
}

func (b *broken) ExtendBatch(ctx context.Context, batch []driver.Extension) error {
	if b.kind == "renewal-unit" {
		for i := range batch {
			batch[i].Lease *= 1000 // milliseconds taken for seconds
		}
	}
	err := b.Client.ExtendBatch(ctx, batch)
	for i := range batch {
		b.extended(batch[i].Name, batch[i].Owner, batch[i].Lease, batch[i].Held, err)
		if b.kind == "extend-always-held" {
			batch[i].Held = true
		}
	}
	return err
}

// extended keeps track of the lease of a holding.
func (b *broken) extended(name, owner string, lease time.Duration, held bool, err error) {
	if err != nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if held && b.holds != nil {
		b.holds[key2(name, owner)] = hold{name, owner, lease}
	} else {
		delete(b.holds, key2(name, owner))
	}
}

func (b *broken) Leave(ctx context.Context, name, ticket string) error {
	b.mu.Lock()
	delete(b.places, key2(name, ticket))
	b.mu.Unlock()
	sh := b.sh
	switch b.kind {
	case "leave-ignored":
		return nil
	case "lifo-queue", "reuse-freed-slot":
		if next, ok := sh.queues.leave(name, ticket); ok {
			// It was the head: wake the new one if the lock is free.
			if st, err := b.Client.Inspect(ctx, name); err == nil && st.Count == 0 {
				sh.wakeTicket(name, next)
			}
		}
	case "wake-lost-after-head-left":
		sh.mu.Lock()
		if sh.heads[name] == ticket {
			delete(sh.heads, name)
			sh.headLeft[name] = true // the next wake-up goes to the head that left
		}
		sh.mu.Unlock()
	case "grant-to-lapsed-head", "queue-lingers":
		sh.mu.Lock()
		delete(sh.beats[name], ticket)
		sh.mu.Unlock()
	}
	return b.Client.Leave(ctx, name, ticket)
}

// Stall stalls the client. For lease-kept-by-connection and
// place-kept-by-connection, the store keeps what the stalled client
// holds, or its place in the queue, alive while it is stalled, as a store
// that ties leases or heartbeats to an open connection would.
func (b *broken) Stall() func() {
	resume := b.Client.Stall()
	if b.kind != "lease-kept-by-connection" && b.kind != "place-kept-by-connection" {
		return resume
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go b.keepAlive(stop, done)
	var once sync.Once
	return func() {
		once.Do(func() {
			close(stop)
			<-done
		})
		resume()
	}
}

// keepAlive renews, on the stalled client's behalf, its leases or its
// heartbeats, until stop is closed.
func (b *broken) keepAlive(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	ctx := context.Background()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		b.mu.Lock()
		var holds []hold
		var places []place
		for _, h := range b.holds {
			holds = append(holds, h)
		}
		for _, p := range b.places {
			places = append(places, p)
		}
		b.mu.Unlock()
		if b.kind == "lease-kept-by-connection" {
			for _, h := range holds {
				_, _ = b.sh.store.Extend(ctx, h.name, h.owner, h.lease)
			}
			continue
		}
		for _, p := range places {
			if res, err := b.sh.store.AcquireFair(ctx, p.req, p.ttl); err == nil && res.Acquired {
				b.mu.Lock()
				delete(b.places, key2(p.req.Name, p.req.Ticket))
				b.mu.Unlock()
			}
		}
	}
}

func (b *broken) Subscribe(ctx context.Context, name, ticket string) (driver.Subscription, error) {
	sub, err := b.Client.Subscribe(ctx, name, ticket)
	if err != nil {
		return nil, err
	}
	return b.wrap(sub, name, ticket), nil
}

// SubscribeActive overrides the one promoted from memory.Client, which
// would bypass the breakage.
func (b *broken) SubscribeActive(name, ticket string) (driver.Subscription, bool) {
	sub, ok := b.Client.SubscribeActive(name, ticket)
	if !ok {
		return nil, false
	}
	return b.wrap(sub, name, ticket), true
}

// wrap applies the subscription breakages to sub.
func (b *broken) wrap(sub driver.Subscription, name, ticket string) driver.Subscription {
	switch b.kind {
	case "deaf-notifier":
		return deafSubscription{sub, make(chan struct{})}
	case "stale-grant-claimable":
		b.sh.mu.Lock()
		b.sh.grants[key2(name, ticket)] = sub
		b.sh.mu.Unlock()
	case "wake-lost-after-head-left", "wakes-every-waiter", "first-process-only", "lifo-queue", "reuse-freed-slot":
		return b.sh.tap(b, sub, name, ticket)
	}
	return sub
}

func (b *broken) Inspect(ctx context.Context, name string) (driver.State, error) {
	st, err := b.Client.Inspect(ctx, name)
	switch {
	case b.kind == "lifo-queue" || b.kind == "reuse-freed-slot":
		st.Waiters = b.sh.queues.len(name)
	case b.kind == "fence-repeats" && st.Count > 0:
		st.Fence = 1
	}
	return st, err
}

// deafSubscription holds a real subscription but is never woken.
type deafSubscription struct {
	driver.Subscription
	never chan struct{}
}

func (d deafSubscription) Wake() <-chan struct{} { return d.never }

// tapSub forwards the wake-ups of a subscription, which the breakage may
// drop, and takes wake-ups the breakage adds.
type tapSub struct {
	sub          driver.Subscription
	b            *broken
	name, ticket string
	wake         chan struct{}
	stop, done   chan struct{}
	once         sync.Once
}

// tap returns a tapped sub of client b.
func (sh *shared) tap(b *broken, sub driver.Subscription, name, ticket string) *tapSub {
	t := &tapSub{sub: sub, b: b, name: name, ticket: ticket, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	sh.mu.Lock()
	sh.taps[name] = append(sh.taps[name], t)
	if sh.first[name] == nil {
		sh.first[name] = b
	}
	sh.mu.Unlock()
	go t.run()
	return t
}

func (t *tapSub) run() {
	defer close(t.done)
	for {
		select {
		case <-t.sub.Wake():
			if t.b.sh.pass(t) {
				t.signal()
			}
		case <-t.stop:
			return
		}
	}
}

func (t *tapSub) signal() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

func (t *tapSub) Wake() <-chan struct{} { return t.wake }

func (t *tapSub) Granted() (int64, bool) {
	return t.sub.Granted()
}

func (t *tapSub) Close() {
	t.once.Do(func() {
		close(t.stop)
		<-t.done
		t.sub.Close()
		sh := t.b.sh
		sh.mu.Lock()
		sh.taps[t.name] = slices.DeleteFunc(sh.taps[t.name], func(x *tapSub) bool { return x == t })
		sh.mu.Unlock()
	})
}

// pass reports whether a wake-up of t gets through.
func (sh *shared) pass(t *tapSub) bool {
	if k := t.b.kind; k == "lifo-queue" || k == "reuse-freed-slot" {
		// The memory store, whose own queue is empty, wakes every waiter
		// on a release. While the broken store's queue is empty (barging)
		// that is right; otherwise the release woke its head (see Release).
		_, queued := sh.queues.head(t.name)
		return !queued
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	switch t.b.kind {
	case "wake-lost-after-head-left":
		if sh.headLeft[t.name] {
			delete(sh.headLeft, t.name)
			return false
		}
	case "first-process-only":
		return sh.first[t.name] == t.b
	}
	return true
}

// wakeTicket wakes the tapped subscriptions of ticket.
func (sh *shared) wakeTicket(name, ticket string) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for _, t := range sh.taps[name] {
		if t.ticket == ticket {
			t.signal()
		}
	}
}

// wakeAll wakes every tapped subscription of name, of every client.
func (sh *shared) wakeAll(name string) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for _, t := range sh.taps[name] {
		t.signal()
	}
}

// sliceQueues is a fair queue of a broken store, shared by all its
// clients, with heartbeats: lifo-queue serves the newest waiter first;
// reuse-freed-slot gives an arrival the place a waiter that left (Leave)
// freed last, rather than the tail. A release wakes the head.
type sliceQueues struct {
	kind     string
	mu       sync.Mutex
	q        map[string][]string             // places in order; "" is a freed place (reuse-freed-slot)
	freed    map[string][]int                // freed places, the latest last
	deadline map[string]map[string]time.Time // heartbeat deadlines
}

// order returns the tickets of name in the order they are served, after
// evicting those whose heartbeat lapsed. Called with l.mu held.
func (l *sliceQueues) order(name string) []string {
	now := time.Now()
	var out []string
	for _, t := range l.q[name] {
		if t == "" {
			continue
		}
		if now.After(l.deadline[name][t]) {
			l.remove(name, t, false)
			continue
		}
		out = append(out, t)
	}
	if l.kind == "lifo-queue" {
		slices.Reverse(out)
	}
	return out
}

// head returns the ticket of name that is served next.
func (l *sliceQueues) head(name string) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if q := l.order(name); len(q) > 0 {
		return q[0], true
	}
	return "", false
}

func (l *sliceQueues) acquire(ctx context.Context, c *memory.Client, req driver.AcquireRequest, waiterTTL time.Duration) (driver.AcquireResult, error) {
	st, err := c.Inspect(ctx, req.Name)
	if err != nil {
		return driver.AcquireResult{}, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	q := l.order(req.Name)
	if st.Owner == req.Owner || st.Count == 0 && (len(q) == 0 || q[0] == req.Ticket) {
		res, err := c.Acquire(ctx, req)
		if err == nil && res.Acquired {
			l.remove(req.Name, req.Ticket, false)
		}
		return res, err
	}
	pos := slices.Index(q, req.Ticket)
	if waiterTTL > 0 {
		if pos < 0 {
			l.add(req.Name, req.Ticket)
		}
		if l.deadline[req.Name] == nil {
			l.deadline[req.Name] = make(map[string]time.Time)
		}
		l.deadline[req.Name][req.Ticket] = time.Now().Add(waiterTTL)
		pos = slices.Index(l.order(req.Name), req.Ticket)
	}
	res := driver.AcquireResult{TTL: -1, Position: pos, Fence: st.Fence}
	if st.Count > 0 {
		res.TTL = st.TTL
	}
	return res, nil
}

// add places ticket in the queue of name. Called with l.mu held.
func (l *sliceQueues) add(name, ticket string) {
	if f := l.freed[name]; l.kind == "reuse-freed-slot" && len(f) > 0 {
		l.q[name][f[len(f)-1]] = ticket
		l.freed[name] = f[:len(f)-1]
		return
	}
	l.q[name] = append(l.q[name], ticket)
}

// remove takes ticket out of the queue of name; for reuse-freed-slot, a
// departure frees its place for the next arrival. Called with l.mu held.
func (l *sliceQueues) remove(name, ticket string, departure bool) {
	delete(l.deadline[name], ticket)
	i := slices.Index(l.q[name], ticket)
	if i < 0 {
		return
	}
	if l.kind == "reuse-freed-slot" {
		l.q[name][i] = ""
		if departure {
			l.freed[name] = append(l.freed[name], i)
		}
		return
	}
	l.q[name] = slices.Delete(l.q[name], i, i+1)
}

// leave takes ticket out of the queue of name; when it was the head, it
// returns the new head, if any.
func (l *sliceQueues) leave(name, ticket string) (next string, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	q := l.order(name)
	wasHead := len(q) > 0 && q[0] == ticket
	l.remove(name, ticket, true)
	if q = l.order(name); wasHead && len(q) > 0 {
		return q[0], true
	}
	return "", false
}

func (l *sliceQueues) len(name string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.order(name))
}
