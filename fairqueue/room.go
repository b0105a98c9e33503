package fairqueue

import "time"

// Room is the reference implementation of the waiting room of one lock
// name, kept in memory. It is not safe for concurrent use: the caller
// guards it together with the lock state it belongs to, so that an
// acquisition and its queue step are one atomic step.
type Room struct {
	order    []string             // tickets, head first
	deadline map[string]time.Time // heartbeat deadline per ticket
}

// Len returns the number of queued tickets.
func (r *Room) Len() int { return len(r.order) }

// Head returns the ticket at the head, if any.
func (r *Room) Head() (string, bool) {
	if len(r.order) == 0 {
		return "", false
	}
	return r.order[0], true
}

// Position returns the 0-based place of ticket, or -1.
func (r *Room) Position(ticket string) int {
	for i, t := range r.order {
		if t == ticket {
			return i
		}
	}
	return -1
}

// Tickets returns the queued tickets, head first, with their heartbeat
// deadlines, in new slices.
func (r *Room) Tickets() ([]string, []time.Time) {
	ts := append([]string(nil), r.order...)
	ds := make([]time.Time, len(ts))
	for i, t := range ts {
		ds[i] = r.deadline[t]
	}
	return ts, ds
}

// Evict removes every ticket whose deadline is not after now and returns
// how many it removed.
func (r *Room) Evict(now time.Time) int {
	kept := r.order[:0]
	n := 0
	for _, t := range r.order {
		if !r.deadline[t].After(now) {
			delete(r.deadline, t)
			n++
			continue
		}
		kept = append(kept, t)
	}
	clear(r.order[len(kept):])
	r.order = kept
	return n
}

// Join registers ticket at the tail, or keeps its place if queued, and sets
// its heartbeat deadline. It returns the ticket's position.
func (r *Room) Join(ticket string, deadline time.Time) int {
	if r.deadline == nil {
		r.deadline = make(map[string]time.Time)
	}
	_, queued := r.deadline[ticket]
	r.deadline[ticket] = deadline
	if queued {
		return r.Position(ticket)
	}
	r.order = append(r.order, ticket)
	return len(r.order) - 1
}

// Leave removes ticket and reports whether it was queued.
func (r *Room) Leave(ticket string) bool {
	if _, ok := r.deadline[ticket]; !ok {
		return false
	}
	delete(r.deadline, ticket)
	i := r.Position(ticket)
	r.order = append(r.order[:i], r.order[i+1:]...)
	return true
}
