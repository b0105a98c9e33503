package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/disgolock/disgo/internal/rediscore"
	"github.com/disgolock/disgo/locker/driver"
)

// kind is one lock kind the commands know: how list recognizes it among
// the keys of a name, how inspect and watch read it, how release frees it,
// and how it is shown. A new lock kind is one more entry in kinds; no
// command changes.
type kind struct {
	name string
	// about is the kind's one-line description, for the help texts.
	about string
	// live are the key suffixes (see rediscore.Layout.Keys and KindKeys)
	// whose presence makes a name an existing lock of this kind.
	live []string
	// backend returns the store's Backend of this kind (the store itself
	// for the mutex, one of its views otherwise), or an error when the
	// store has none.
	backend func(s *session) (driver.Backend, error)
	// inspect reads the state of the lock name.
	inspect func(ctx context.Context, s *session, name string) (view, error)
}

// view is the state of one lock, as a kind shows it. It is marshalled as
// is for --json.
type view interface {
	// detail writes the full view (inspect, watch) for a tabwriter.
	detail(w io.Writer)
	// live reports whether the lock exists: held, or with waiters.
	live() bool
	// row is the lock's line in list: the HOLDER, HOLDS, FENCE, LEASE and
	// WAITERS columns, filled as fits the kind.
	row() []string
	// holdings describes the live holdings in one line, for release.
	holdings() string
}

// kinds are the known lock kinds, the mutex first: it is the default of
// every command that takes --kind.
var kinds = []kind{
	{name: "lock", about: "the exclusive lock of locker.New (a mutex)",
		live: []string{"lock", "q"}, backend: mutexBackend, inspect: inspectLock},
	{name: "rwlock", about: "the read-write lock of locker.NewRW",
		live: []string{"rw.h", "rw.q"}, backend: rwBackend, inspect: inspectHolders(rwKind)},
	{name: "semaphore", about: "the counting semaphore of locker.NewSemaphore",
		live: []string{"sem.h", "sem.q"}, backend: semBackend, inspect: inspectHolders(semKind)},
}

// kindNames lists the names of the kinds, for messages.
func kindNames() string {
	n := make([]string, len(kinds))
	for i := range kinds {
		n[i] = kinds[i].name
	}
	return strings.Join(n, ", ")
}

// kindsHelp describes the kinds, one per line, for the help texts.
func kindsHelp() string {
	var b strings.Builder
	for _, k := range kinds {
		fmt.Fprintf(&b, "  %-10s %s\n", k.name, k.about)
	}
	return b.String()
}

// lookupKind returns the kind named name, or a usage error.
func lookupKind(name string) (*kind, error) {
	for i := range kinds {
		if kinds[i].name == name {
			return &kinds[i], nil
		}
	}
	return nil, usagef("--kind %q: want one of %s", name, kindNames())
}

// kindsOf returns the kinds of a name whose keys have the suffixes present:
// those that make it a lock of the kind that exists now, in the order of
// kinds.
func kindsOf(present map[string]bool) []*kind {
	var ks []*kind
	for i := range kinds {
		for _, suf := range kinds[i].live {
			if present[suf] {
				ks = append(ks, &kinds[i])
				break
			}
		}
	}
	return ks
}

func mutexBackend(s *session) (driver.Backend, error) { return s.store, nil }

func rwBackend(s *session) (driver.Backend, error) {
	rw, ok := s.store.(driver.RWLocker)
	if !ok {
		return nil, fmt.Errorf("the %s store has no read-write locks", s.o.adapter)
	}
	// Either view reads and frees the whole read-write lock.
	_, w := rw.RWLocks()
	return w, nil
}

func semBackend(s *session) (driver.Backend, error) {
	sm, ok := s.store.(driver.Semaphorer)
	if !ok {
		return nil, fmt.Errorf("the %s store has no semaphores", s.o.adapter)
	}
	return sm.Semaphores(), nil
}

// header is what every view starts with.
type header struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	Key       string `json:"key"`
	Kind      string `json:"kind"`
}

func newHeader(kind, name string) header {
	ns, key, ok := splitName(name)
	if !ok {
		ns, key = "", name
	}
	return header{Name: name, Namespace: ns, Key: key, Kind: kind}
}

// lockView is the state of an exclusive lock.
type lockView struct {
	header
	Held     bool         `json:"held"`
	Owner    string       `json:"owner"`
	Count    int          `json:"count"`
	Fence    int64        `json:"fence"`
	LeaseMS  int64        `json:"lease_ms"` // remaining lease, -1 when free
	Waiters  int          `json:"waiters"`
	Queue    []waiterView `json:"queue"` // in order; null when the store cannot list its queue
	QueueErr string       `json:"queue_error,omitempty"`
}

// waiterView is one waiter of a fair queue.
type waiterView struct {
	Position       int    `json:"position"`
	Ticket         string `json:"ticket"`
	Owner          string `json:"owner"`
	HeartbeatAgeMS int64  `json:"heartbeat_age_ms"`  // since its last heartbeat; -1 when unknown
	HeartbeatMS    int64  `json:"heartbeat_left_ms"` // until it is evicted for silence; negative once lapsed
	// What it waits for, for the kinds with holdings of their own: "read"
	// or "write" (a read-write lock), or Permits (a semaphore); both empty
	// for a mutex, and when its record is gone.
	Mode    string `json:"mode,omitempty"`
	Permits int    `json:"permits,omitempty"`
}

func inspectLock(ctx context.Context, s *session, name string) (view, error) {
	in, ok := s.store.(stateInspector)
	if !ok {
		return nil, fmt.Errorf("the %s store cannot inspect locks", s.o.adapter)
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	st, err := in.Inspect(ctx, name)
	if err != nil {
		return nil, err
	}
	v := &lockView{header: newHeader("lock", name), Held: st.Owner != "", Owner: st.Owner, Count: st.Count,
		Fence: st.Fence, LeaseMS: -1, Waiters: st.Waiters}
	if v.Held {
		v.LeaseMS = st.TTL.Milliseconds()
	}
	if q := queueOf(s.store); q != nil && st.Waiters > 0 {
		ws, err := q(ctx, name)
		if err != nil {
			v.QueueErr = err.Error()
		} else {
			v.Queue = ws
		}
	}
	return v, nil
}

func (v *lockView) detail(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "LOCK\t%s\n", displayName(v.header))
	fmt.Fprintf(tw, "KIND\t%s\n", v.Kind)
	if v.Held {
		fmt.Fprintf(tw, "HOLDER\t%s\n", v.Owner)
		fmt.Fprintf(tw, "HOLDS\t%d\n", v.Count)
		fmt.Fprintf(tw, "FENCE\t%d\n", v.Fence)
		fmt.Fprintf(tw, "LEASE LEFT\t%s\n", ms(v.LeaseMS))
	} else {
		fmt.Fprintf(tw, "HOLDER\t(free)\n")
	}
	fmt.Fprintf(tw, "WAITERS\t%d\n", v.Waiters)
	tw.Flush()
	printQueue(w, v.Waiters, v.Queue, v.QueueErr, false)
}

// printQueue writes the queue part of a detail view; with wants, the
// WANTS column says what each waiter waits for.
func printQueue(w io.Writer, waiters int, queue []waiterView, queueErr string, wants bool) {
	switch {
	case waiters == 0:
	case queueErr != "":
		fmt.Fprintf(w, "\nqueue: %s\n", queueErr)
	case queue == nil:
		fmt.Fprintf(w, "\n(this store does not list its queue: the waiters are counted only)\n")
	default:
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		if wants {
			fmt.Fprintf(tw, "POSITION\tOWNER\tWANTS\tTICKET\tHEARTBEAT AGE\tEVICTED IN\n")
		} else {
			fmt.Fprintf(tw, "POSITION\tOWNER\tTICKET\tHEARTBEAT AGE\tEVICTED IN\n")
		}
		for _, q := range queue {
			evict := ms(q.HeartbeatMS)
			if q.HeartbeatMS < 0 {
				evict = "lapsed"
			}
			want := ""
			if wants {
				switch {
				case q.Mode != "":
					want = q.Mode + "\t"
				case q.Permits > 0:
					want = plural(q.Permits, "permit") + "\t"
				default:
					want = "-\t"
				}
			}
			fmt.Fprintf(tw, "%d\t%s\t%s%s\t%s\t%s\n", q.Position, dash(q.Owner), want, q.Ticket, ms(q.HeartbeatAgeMS), evict)
		}
		tw.Flush()
	}
}

// plural returns "1 thing" or "n things".
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return strconv.Itoa(n) + " " + thing + "s"
}

func (v *lockView) live() bool { return v.Held || v.Waiters > 0 }

func (v *lockView) holdings() string {
	if !v.Held {
		return ""
	}
	return fmt.Sprintf("owner %s, fence %d", v.Owner, v.Fence)
}

func (v *lockView) row() []string {
	if !v.Held {
		return []string{"(free)", "-", "-", "-", strconv.Itoa(v.Waiters)}
	}
	return []string{v.Owner, strconv.Itoa(v.Count), strconv.FormatInt(v.Fence, 10), ms(v.LeaseMS), strconv.Itoa(v.Waiters)}
}

// displayName is how a lock is named in tables: the key, with the
// namespace when there is one, and the store's name when it differs.
func displayName(h header) string {
	switch {
	case h.Namespace != "":
		return fmt.Sprintf("%s (namespace %s)", h.Key, h.Namespace)
	case h.Key != h.Name:
		return fmt.Sprintf("%s (stored as %s)", h.Key, h.Name)
	}
	return h.Key
}

// ms renders milliseconds for people: "-" when negative (unknown).
func ms(n int64) string {
	if n < 0 {
		return "-"
	}
	d := time.Duration(n) * time.Millisecond
	if d >= time.Minute {
		return d.Round(time.Second).String()
	}
	return d.Round(time.Millisecond).String()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// key returns the key of name with suffix in the session's layout (see
// rediscore.Layout.Keys).
func (s *session) key(name, suffix string) string {
	return s.layout.Prefix + ":" + rediscore.Tag(name) + ":" + suffix
}
