package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/disgolock/disgo/locker/driver"
)

// holdersKind is one of the kinds whose locks have many holdings: the
// read-write locks and the semaphores.
type holdersKind int

const (
	rwKind holdersKind = iota + 1
	semKind
)

// holdersView is what the views of rwKind and semKind share.
type holdersView struct {
	header
	Held     bool          `json:"held"`    // some holding is live
	Holders  []holdingView `json:"holders"` // by fencing token; empty when free
	Waiters  int           `json:"waiters"`
	Queue    []waiterView  `json:"queue"` // in order; null when the store cannot list its queue
	QueueErr string        `json:"queue_error,omitempty"`
}

// holdingView is one holding of a read-write lock or semaphore.
type holdingView struct {
	Owner   string `json:"owner"`
	Mode    string `json:"mode,omitempty"`    // "read" or "write" (read-write lock)
	Permits int    `json:"permits,omitempty"` // the permits it takes (semaphore)
	Count   int    `json:"count"`             // hold count (re-entries)
	Fence   int64  `json:"fence"`
	LeaseMS int64  `json:"lease_ms"` // remaining lease
}

// rwView is the state of a read-write lock.
type rwView struct {
	holdersView
	Writer  string `json:"writer"`  // owner of the write hold; "" when none
	Readers int    `json:"readers"` // read holds
}

// semView is the state of a semaphore.
type semView struct {
	holdersView
	Limit int `json:"limit"` // the declared limit; 0 when none is recorded
	Used  int `json:"used"`  // permits taken by live holdings
}

// inspectHolders returns the inspect function of kind k.
func inspectHolders(k holdersKind) func(ctx context.Context, s *session, name string) (view, error) {
	return func(ctx context.Context, s *session, name string) (view, error) {
		kname, suffix := "rwlock", "rw"
		if k == semKind {
			kname, suffix = "semaphore", "sem"
		}
		var b driver.Backend
		var err error
		if k == rwKind {
			b, err = rwBackend(s)
		} else {
			b, err = semBackend(s)
		}
		if err != nil {
			return nil, err
		}
		in, ok := b.(stateInspector)
		if !ok {
			return nil, fmt.Errorf("the %s store cannot inspect %ss", s.o.adapter, kname)
		}
		ctx, cancel := s.call(ctx)
		defer cancel()
		st, err := in.Inspect(ctx, name)
		if err != nil {
			return nil, err
		}
		hv := holdersView{header: newHeader(kname, name), Held: len(st.Holders) > 0, Waiters: st.Waiters,
			Holders: make([]holdingView, 0, len(st.Holders))}
		readers := 0
		for _, h := range st.Holders {
			v := holdingView{Owner: h.Owner, Count: h.Count, Fence: h.Fence, LeaseMS: h.TTL.Milliseconds()}
			switch {
			case k == semKind:
				v.Permits = h.Permits
			case h.Write:
				v.Mode = "write"
			default:
				v.Mode = "read"
				readers++
			}
			hv.Holders = append(hv.Holders, v)
		}
		sort.Slice(hv.Holders, func(i, j int) bool { return hv.Holders[i].Fence < hv.Holders[j].Fence })
		if q := queueOf(b); q != nil && st.Waiters > 0 {
			ws, err := q(ctx, name)
			if err != nil {
				hv.QueueErr = err.Error()
			} else {
				wantsOf(ctx, s, s.key(name, suffix+".qw"), ws)
				hv.Queue = ws
			}
		}
		if k == semKind {
			return &semView{holdersView: hv, Limit: st.Limit, Used: st.Used}, nil
		}
		return &rwView{holdersView: hv, Writer: st.Owner, Readers: readers}, nil
	}
}

// wantsOf fills in what each waiter waits for from its record in the
// waiters hash key (see the README's key layout): "<heartbeat deadline>
// <waiter TTL> <grant lease> <inbox> <r|w|s> <permits> <limit> <owner>".
// It is best effort: a record that is gone, or a failed read, leaves the
// waiter's Mode and Permits empty.
func wantsOf(ctx context.Context, s *session, key string, ws []waiterView) {
	if len(ws) == 0 {
		return
	}
	tickets := make([]string, len(ws))
	for i, w := range ws {
		tickets[i] = w.Ticket
	}
	recs, err := s.admin.HMGet(ctx, key, tickets...)
	if err != nil {
		return
	}
	for i, rec := range recs {
		f := strings.SplitN(rec, " ", 8)
		if len(f) < 8 {
			continue
		}
		switch f[4] {
		case "r":
			ws[i].Mode = "read"
		case "w":
			ws[i].Mode = "write"
		case "s":
			if n, err := strconv.Atoi(f[5]); err == nil && n > 0 {
				ws[i].Permits = n
			}
		}
	}
}

func (v *holdersView) live() bool { return v.Held || v.Waiters > 0 }

// totals returns the hold counts summed, the greatest fencing token and
// the longest lease left of the holdings.
func (v *holdersView) totals() (count int, fence, lease int64) {
	lease = -1
	for _, h := range v.Holders {
		count += h.Count
		fence = max(fence, h.Fence)
		lease = max(lease, h.LeaseMS)
	}
	return count, fence, lease
}

// rowWith is the list row with holder in the HOLDER column.
func (v *holdersView) rowWith(holder string) []string {
	if !v.Held {
		return []string{holder, "-", "-", "-", strconv.Itoa(v.Waiters)}
	}
	n, f, l := v.totals()
	return []string{holder, strconv.Itoa(n), strconv.FormatInt(f, 10), ms(l), strconv.Itoa(v.Waiters)}
}

// holdingsLine describes the holdings for release, each with what it took.
func (v *holdersView) holdingsLine(took func(h holdingView) string) string {
	const most = 10
	var parts []string
	for i, h := range v.Holders {
		if i == most {
			parts = append(parts, fmt.Sprintf("and %d more", len(v.Holders)-most))
			break
		}
		parts = append(parts, fmt.Sprintf("owner %s (%s), fence %d", h.Owner, took(h), h.Fence))
	}
	return strings.Join(parts, "; ")
}

// detailWith writes the detail view, with the lines of the kind after
// KIND and the holdings table with the column took.
func (v *holdersView) detailWith(w io.Writer, lines [][2]string, tookTitle string, took func(h holdingView) string) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "LOCK\t%s\n", displayName(v.header))
	fmt.Fprintf(tw, "KIND\t%s\n", v.Kind)
	for _, l := range lines {
		fmt.Fprintf(tw, "%s\t%s\n", l[0], l[1])
	}
	fmt.Fprintf(tw, "WAITERS\t%d\n", v.Waiters)
	tw.Flush()
	if len(v.Holders) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "OWNER\t%s\tHOLDS\tFENCE\tLEASE LEFT\n", tookTitle)
		for _, h := range v.Holders {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\n", h.Owner, took(h), h.Count, h.Fence, ms(h.LeaseMS))
		}
		tw.Flush()
	}
	printQueue(w, v.Waiters, v.Queue, v.QueueErr, true)
}

func modeOf(h holdingView) string    { return h.Mode }
func permitsOf(h holdingView) string { return strconv.Itoa(h.Permits) }

// holder is the HOLDER of a read-write lock: the writer's owner, or how
// many read it.
func (v *rwView) holder() string {
	switch {
	case v.Writer != "":
		return v.Writer
	case v.Readers > 0:
		return plural(v.Readers, "reader")
	}
	return "(free)"
}

func (v *rwView) detail(w io.Writer) {
	v.detailWith(w, [][2]string{{"HOLDER", v.holder()}}, "MODE", modeOf)
}

func (v *rwView) row() []string { return v.rowWith(v.holder()) }

func (v *rwView) holdings() string { return v.holdingsLine(modeOf) }

// permits is the use of a semaphore: "used/limit permits".
func (v *semView) permits() string {
	if v.Limit == 0 {
		if !v.Held {
			return "(free)"
		}
		return plural(v.Used, "permit")
	}
	return fmt.Sprintf("%d/%d permits", v.Used, v.Limit)
}

func (v *semView) detail(w io.Writer) {
	use := fmt.Sprintf("%d in use", v.Used)
	if v.Limit > 0 {
		use = fmt.Sprintf("%d of %d in use", v.Used, v.Limit)
	}
	v.detailWith(w, [][2]string{{"PERMITS", use}, {"HOLDERS", strconv.Itoa(len(v.Holders))}},
		"PERMITS", permitsOf)
}

func (v *semView) row() []string { return v.rowWith(v.permits()) }

func (v *semView) holdings() string {
	return v.holdingsLine(func(h holdingView) string { return plural(h.Permits, "permit") })
}
