//go:build linux

package faulttest

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// The mutex model the histories are checked against. The state is the
// holder: 0 when free, otherwise a hold id. A hold ends by its release, or
// by an implicit "expire" operation: the lease ran out in the store, or the
// loss was signalled. Expire spans from the earliest time the store may
// have let the hold go (the lease deadline the worker last knew, which is
// never later than the store's: it is taken before the request is sent),
// or the loss signal if that came first, to the loss signal (Done closing
// with ErrLost, or Release answering ErrNotHeld), or to the end of time
// when the holder died. Operations whose outcome is unknown (the worker
// was killed during the call, or the store failed) may or may not have
// taken effect.

type opKind int

const (
	opAcquire opKind = iota
	opRelease
	opExpire
)

type outcome int

const (
	outOK      outcome = iota // acquired, released
	outFail                   // not acquired (changes nothing)
	outNotHeld                // release: the store says not held
	outUnknown                // may or may not have taken effect
)

type mInput struct {
	Kind opKind
	Hold int // > 0
	Desc string
	// What the hold takes, for the models of read-write locks and
	// semaphores (see sharedModel); the mutex model ignores them.
	Write   bool // a write hold of a read-write lock
	Permits int  // a semaphore holding's permits (at least 1)
}

type mOutput struct{ Out outcome }

var mutexModel = porcupine.NondeterministicModel{
	Init: func() []any { return []any{0} },
	Step: func(state, input, output any) []any {
		s, in, out := state.(int), input.(mInput), output.(mOutput)
		switch in.Kind {
		case opAcquire:
			switch out.Out {
			case outOK:
				if s == 0 {
					return []any{in.Hold}
				}
				return nil
			case outUnknown:
				if s == 0 {
					return []any{0, in.Hold}
				}
				return []any{s}
			default:
				return []any{s}
			}
		case opRelease:
			switch out.Out {
			case outOK:
				if s == in.Hold {
					return []any{0}
				}
				return nil
			case outNotHeld:
				if s != in.Hold {
					return []any{s}
				}
				return nil
			default:
				if s == in.Hold {
					return []any{0, s}
				}
				return []any{s}
			}
		case opExpire:
			if s == in.Hold {
				return []any{0, s}
			}
			return []any{s}
		}
		return nil
	},
	Equal: func(a, b any) bool { return a.(int) == b.(int) },
	DescribeOperation: func(input, output any) string {
		in, out := input.(mInput), output.(mOutput)
		kind := [...]string{"acquire", "release", "expire"}[in.Kind]
		res := [...]string{"ok", "fail", "notheld", "unknown"}[out.Out]
		return fmt.Sprintf("%s(%s) -> %s", kind, in.Desc, res)
	},
	DescribeState: func(s any) string {
		if s.(int) == 0 {
			return "free"
		}
		return fmt.Sprintf("held by #%d", s.(int))
	},
}

// deadlineSlack absorbs the conversion of a worker's lease deadline to the
// shared clock (two clock readings) and the store clock's granularity.
const deadlineSlack = 5 * time.Millisecond

// holdView is a hold with the times the checks need.
type holdView struct {
	id       int
	desc     string
	invoke   int64 // of the lock call
	acquired int64 // return of the lock call
	fence    int64
	deadline int64 // latest lease deadline the worker knew
	relInv   int64 // invoke of the first release call, 0 if none
	relOK    bool  // some release succeeded
	signal   int64 // earliest loss signal (Done lost, Release not held), 0 if none
	killed   bool  // the worker died holding it (no release began)
	stalled  bool  // the worker was stopped (SIGSTOP) during the lock call until about its lease end
	write    bool  // a write hold of a read-write lock
	permits  int   // a semaphore holding's permits
}

// protectedUntil is the end of the time in which the holder may rely on
// the hold: its release began, its lease ended, or its loss was signalled.
func (h holdView) protectedUntil() int64 {
	end := h.deadline - int64(deadlineSlack)
	if h.relInv != 0 && h.relInv < end {
		end = h.relInv
	}
	if h.signal != 0 && h.signal < end {
		end = h.signal
	}
	return end
}

// protects reports whether the holder could rely on the hold for any
// time at all.
func (h holdView) protects() bool { return h.protectedUntil() > h.acquired }

// void reports whether the hold protected nothing because its worker was
// stopped: its lease had ended (or its loss was signalled) by the time its
// lock call returned, and the worker was stopped during the call until
// about the lease end. Such a hold cannot clash with another. The Locker
// gives back an acquisition whose lease ended before its answer was seen;
// only a stop between that check and the worker's reading of the clock
// leaves a void hold. Any other hold that protected nothing still counts
// (and see checkReturns).
func (h holdView) void() bool { return h.stalled && !h.protects() }

// returnSlack is how long after its lease ended a hold may be seen
// returned by a worker that was not stopped: the Locker checks the lease
// just before it returns, and a loaded machine may delay the worker's
// reading of the clock after that.
const returnSlack = 50 * time.Millisecond

// checkReturns returns the holds whose lease had ended well before their
// lock call returned (see returnSlack), though their worker was not
// stopped during the call: the Locker returned a hold that protected
// nothing.
func checkReturns(holds []holdView) []string {
	var bad []string
	for _, h := range holds {
		if !h.stalled && h.acquired-h.deadline > int64(returnSlack) {
			bad = append(bad, fmt.Sprintf("%s (fence %d) was returned %s after its lease ended, its worker running", h.desc, h.fence, ms(h.acquired-h.deadline)))
		}
	}
	return bad
}

// history is a history built from the workers of an env.
type history struct {
	ops   []porcupine.Operation
	holds []holdView
	end   int64
}

// buildHistory turns every lock and release call of every worker, and the
// holds they made, into operations of the mutex model.
func (e *env) buildHistory() history {
	e.mu.Lock()
	ws := append([]*worker(nil), e.workers...)
	e.mu.Unlock()
	var h history
	h.end = mono()
	never := h.end + int64(time.Hour)
	nextID := 0
	newID := func() int { nextID++; return nextID }
	nw := len(ws)
	for _, w := range ws {
		w.mu.Lock()
		byHandle := map[string]int{}
		shapes := map[string][2]int{} // handle → write (0/1), permits
		for _, c := range w.ops {
			if c.invoke == 0 {
				continue // never began: the worker died or stopped before reading it
			}
			select {
			case <-c.done:
			default:
				continue // still running: the history is built after the workload ended
			}
			ret := c.res.T
			pending := has(c.res.Kinds, kindExited)
			if pending {
				ret = never
			}
			write, permits := holdShape(c.cmd)
			switch c.cmd.Op {
			case "lock":
				id := newID()
				desc := fmt.Sprintf("#%d %s", id, c.cmd.Handle)
				shapes[c.cmd.Handle] = [2]int{b2i(write), permits}
				out := outFail
				switch {
				case c.res.OK:
					out = outOK
					byHandle[c.cmd.Handle] = id
				case pending:
					out = outUnknown
					// It may hold now; if so, the lease ends some time later.
					h.ops = append(h.ops, porcupine.Operation{ClientId: nw + w.index, Input: mInput{opExpire, id, desc, write, permits}, Call: c.invoke, Output: mOutput{outOK}, Return: never})
				}
				h.ops = append(h.ops, porcupine.Operation{ClientId: w.index, Input: mInput{opAcquire, id, desc, write, permits}, Call: c.invoke, Output: mOutput{out}, Return: ret})
			case "release":
				id, ok := byHandle[c.cmd.Handle]
				if !ok || has(c.res.Kinds, kindNoHandle) {
					continue
				}
				out := outUnknown
				switch {
				case c.res.OK:
					out = outOK
				case has(c.res.Kinds, kindNotHeld):
					out = outNotHeld
				}
				sh := shapes[c.cmd.Handle]
				h.ops = append(h.ops, porcupine.Operation{ClientId: w.index, Input: mInput{opRelease, id, fmt.Sprintf("#%d %s", id, c.cmd.Handle), sh[0] == 1, sh[1]}, Call: c.invoke, Output: mOutput{out}, Return: ret})
			}
		}
		for handle, id := range byHandle {
			r := w.holds[handle]
			write, permits := holdShape(r.lock.cmd)
			v := holdView{id: id, desc: fmt.Sprintf("#%d %s", id, handle), invoke: r.lock.invoke, acquired: r.acquired, fence: r.fence, deadline: r.deadline,
				write: write, permits: permits}
			if r.doneAt != 0 && has(r.doneKind, kindLost) {
				v.signal = r.doneAt
			}
			for _, rc := range r.releases {
				if rc.invoke == 0 {
					continue
				}
				if v.relInv == 0 {
					v.relInv = rc.invoke
				}
				select {
				case <-rc.done:
					switch {
					case rc.res.OK:
						v.relOK = true
					case has(rc.res.Kinds, kindNotHeld) && (v.signal == 0 || rc.res.T < v.signal):
						v.signal = rc.res.T
					}
				default:
				}
			}
			v.killed = v.relInv == 0 && w.killedAt != 0
			for _, p := range w.pauses {
				// A stop during the call that lasted until about the end of
				// the lease (or was not over).
				if p[0] < v.acquired && (p[1] == 0 || p[1] > v.deadline-int64(returnSlack)) {
					v.stalled = true
				}
			}
			h.holds = append(h.holds, v)
			if !v.relOK || v.signal != 0 {
				lo := v.deadline - int64(deadlineSlack)
				hi := never
				if v.signal != 0 {
					hi = v.signal
					lo = min(lo, v.signal)
				}
				h.ops = append(h.ops, porcupine.Operation{ClientId: nw + w.index, Input: mInput{opExpire, id, v.desc, write, permits}, Call: lo, Output: mOutput{outOK}, Return: hi})
			}
		}
		w.mu.Unlock()
	}
	sort.Slice(h.holds, func(i, j int) bool { return h.holds[i].acquired < h.holds[j].acquired })
	return h
}

// holdShape is what the hold of a lock command takes: a write hold of a
// read-write lock, and the permits of a semaphore holding (0 for other
// kinds).
func holdShape(c command) (write bool, permits int) {
	switch c.Kind {
	case rwLock:
		return c.Side == "write", 0
	case semLock:
		return false, max(c.Permits, 1)
	}
	return false, 0
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// checkHistory checks the history of e with porcupine against the mutex
// model, checks that fences increase in acquisition order, and that no two
// holds overlap unless the earlier one's lease had ended or its loss had
// been signalled. It reports violations with t.Errorf and returns the
// history.
func (e *env) checkHistory() history {
	e.t.Helper()
	return e.checkHistoryAgainst(mutexModel, "a mutex", checkOverlaps)
}

// checkHistoryAgainst is checkHistory with another model (named what) and
// another check of the holds' protected intervals.
func (e *env) checkHistoryAgainst(nm porcupine.NondeterministicModel, what string, overlaps func([]holdView) []string) history {
	t := e.t
	t.Helper()
	h := e.buildHistory()

	start := time.Now()
	model := nm.ToModel()
	res, info := porcupine.CheckOperationsVerbose(model, h.ops, time.Minute)
	took := time.Since(start)
	t.Logf("history: %d operations, %d holds; porcupine (%s) says %s in %v", len(h.ops), len(h.holds), what, res, took.Round(time.Millisecond))
	switch res {
	case porcupine.Illegal:
		path := filepath.Join(os.TempDir(), fmt.Sprintf("faulttest-%s.html", strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())))
		if err := porcupine.VisualizePath(model, info, path); err == nil {
			t.Errorf("the history is not linearizable against %s: see %s", what, path)
		} else {
			t.Errorf("the history is not linearizable against %s (visualization failed: %v)", what, err)
		}
	case porcupine.Unknown:
		t.Errorf("porcupine could not decide within its time limit (%d operations)", len(h.ops))
	}

	for _, v := range checkFences(h.holds) {
		t.Errorf("fencing: %s", v)
	}
	for _, v := range overlaps(h.holds) {
		t.Errorf("mutual exclusion: %s", v)
	}
	for _, v := range checkReturns(h.holds) {
		t.Errorf("lease: %s", v)
	}
	for _, v := range h.holds {
		if v.void() {
			t.Logf("%s (fence %d) protected nothing: its worker was stopped during the lock call, and its lease ended %s before the call returned", v.desc, v.fence, ms(v.acquired-v.deadline))
		}
	}
	return h
}

// checkFences returns the pairs of holds whose fences do not increase in
// acquisition order: A's acquisition returned before B's began, yet B's
// fence is not greater.
func checkFences(holds []holdView) []string {
	var bad []string
	for i, a := range holds {
		for _, b := range holds[i+1:] {
			switch {
			case a.fence == b.fence:
				bad = append(bad, fmt.Sprintf("%s and %s have the same fence %d", a.desc, b.desc, a.fence))
			case a.acquired < b.invoke && b.fence < a.fence:
				bad = append(bad, fmt.Sprintf("%s (fence %d) acquired before %s began, which got the lower fence %d", a.desc, a.fence, b.desc, b.fence))
			case b.acquired < a.invoke && a.fence < b.fence:
				bad = append(bad, fmt.Sprintf("%s (fence %d) acquired before %s began, which got the lower fence %d", b.desc, b.fence, a.desc, a.fence))
			}
			if len(bad) > 20 {
				return bad
			}
		}
	}
	return bad
}

// checkOverlaps returns the pairs of holds (sorted by acquisition) where
// the later one was acquired while the earlier one was still protected,
// unless the later one was void (see holdView.void).
func checkOverlaps(holds []holdView) []string {
	var bad []string
	for i, a := range holds {
		end := a.protectedUntil()
		for _, b := range holds[i+1:] {
			if b.acquired >= end || b.void() {
				continue
			}
			bad = append(bad, fmt.Sprintf("%s (fence %d) acquired %s before the end of %s (fence %d): its lease ran until %s, release began %s, loss signalled %s",
				b.desc, b.fence, ms(end-b.acquired), a.desc, a.fence, ms(a.deadline-a.acquired)+" after its acquisition", relTo(a.relInv, a.acquired), relTo(a.signal, a.acquired)))
			if len(bad) > 20 {
				return bad
			}
		}
	}
	return bad
}

func relTo(ts, base int64) string {
	if ts == 0 {
		return "never"
	}
	return ms(ts-base) + " after its acquisition"
}
