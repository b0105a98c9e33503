package memory

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/disgolock/disgo/fairqueue"
	"github.com/disgolock/disgo/locker/driver"
)

var (
	_ driver.RWLocker   = (*Store)(nil)
	_ driver.Semaphorer = (*Store)(nil)
	_ driver.RWLocker   = (*Client)(nil)
	_ driver.Semaphorer = (*Client)(nil)

	_ driver.Backend       = (*view)(nil)
	_ driver.Queue         = (*view)(nil)
	_ driver.Notifier      = (*view)(nil)
	_ driver.Inspector     = (*view)(nil)
	_ driver.BatchExtender = (*view)(nil)
	_ driver.ForceReleaser = (*view)(nil)
)

// RWLocks implements driver.RWLocker on the store's default client.
func (s *Store) RWLocks() (read, write driver.Backend) { return s.def.RWLocks() }

// Semaphores implements driver.Semaphorer on the store's default client.
func (s *Store) Semaphores() driver.Backend { return s.def.Semaphores() }

// RWLocks implements driver.RWLocker: the read and the write view of the
// client's read-write locks. Both implement driver.Backend, driver.Queue,
// driver.Notifier, driver.Inspector, driver.BatchExtender and
// driver.ForceReleaser, and share the client's stalls and kill. It returns
// the same values every time.
func (c *Client) RWLocks() (read, write driver.Backend) { return c.read, c.write }

// Semaphores implements driver.Semaphorer: the view of the client's
// semaphores, with the same capabilities as the views of RWLocks. It
// returns the same value every time.
func (c *Client) Semaphores() driver.Backend { return c.sem }

// slot is one holding's place in a shared record: its owner and, for a
// read-write lock, whether it is the write hold.
type slot struct {
	owner string
	write bool
}

// holding is one holding of a read-write lock or semaphore.
type holding struct {
	count      int // hold count, > 0
	permits    int // a semaphore holding's permits; 0 for a read-write lock
	fence      int64
	lastTicket string
	expiry     time.Time
}

// sgrant is what the grant pass needs to hand a holding to a queued ticket.
type sgrant struct {
	slot    slot
	permits int
	lease   time.Duration // min(lease, waiter TTL)
	ttl     time.Duration // the waiter TTL of its latest attempt
}

// shared is the record of one read-write lock or semaphore.
type shared struct {
	holds   map[slot]*holding
	writer  string    // owner of the write hold; "" when none
	used    int       // permits of the live holdings (semaphore)
	limit   int       // recorded limit (semaphore); 0 while nobody holds or waits
	newest  int64     // newest fence issued for the lock while the record lived
	soonest time.Time // no holding expires before this instant

	room       fairqueue.Room
	queueUntil time.Time         // the queue vanishes after this, meaningful while room.Len() > 0
	grants     map[string]sgrant // per queued ticket

	revoked map[slot]time.Time // slots ForceRelease ended, until when their Extend reports it
}

// add records a fresh holding of sl.
func (r *shared) add(sl slot, h *holding) {
	if r.holds == nil {
		r.holds = make(map[slot]*holding)
	}
	if len(r.holds) == 0 || h.expiry.Before(r.soonest) {
		r.soonest = h.expiry
	}
	r.holds[sl] = h
	r.used += h.permits
	if sl.write {
		r.writer = sl.owner
	}
}

// drop ends the holding of sl.
func (r *shared) drop(sl slot) {
	h := r.holds[sl]
	if h == nil {
		return
	}
	delete(r.holds, sl)
	r.used -= h.permits
	if sl.write {
		r.writer = ""
	}
}

// setExpiry sets the lease end of h, a holding of r.
func (r *shared) setExpiry(h *holding, t time.Time) {
	h.expiry = t
	if t.Before(r.soonest) {
		r.soonest = t
	}
}

// expire drops the holdings whose lease ended, a queue that vanished and
// revoked markers that lapsed.
func (r *shared) expire(now time.Time) {
	if len(r.holds) > 0 && now.After(r.soonest) {
		var next time.Time
		for sl, h := range r.holds {
			switch {
			case now.After(h.expiry):
				r.drop(sl)
			case next.IsZero() || h.expiry.Before(next):
				next = h.expiry
			}
		}
		r.soonest = next
	}
	if r.room.Len() > 0 && now.After(r.queueUntil) {
		r.room, r.grants = fairqueue.Room{}, nil
	}
	for sl, until := range r.revoked {
		if now.After(until) {
			delete(r.revoked, sl)
		}
	}
	r.settle()
}

// settle forgets the limit once nobody holds or waits.
func (r *shared) settle() {
	if len(r.holds) == 0 && r.room.Len() == 0 {
		r.limit = 0
	}
}

func (r *shared) idle() bool {
	return len(r.holds) == 0 && r.room.Len() == 0 && len(r.revoked) == 0
}

// evict removes lapsed waiters and their grants.
func (r *shared) evict(now time.Time) {
	if r.room.Len() > 0 && r.room.Evict(now) > 0 {
		for t := range r.grants {
			if r.room.Position(t) < 0 {
				delete(r.grants, t)
			}
		}
	}
}

// leave removes ticket from the queue and its grant.
func (r *shared) leave(ticket string) {
	delete(r.grants, ticket)
	r.room.Leave(ticket)
}

// fits reports whether a fresh holding of sl, of permits of limit for a
// semaphore, can be taken now, the queue aside.
func (r *shared) fits(kind lockKind, sl slot, permits, limit int) bool {
	switch {
	case kind == semLock:
		return r.used+permits <= limit
	case !sl.write:
		return r.writer == "" || r.writer == sl.owner
	default:
		others := len(r.holds)
		if r.holds[slot{sl.owner, false}] != nil {
			others--
		}
		return others == 0 // the owner holds no write hold: the caller checked
	}
}

// wait is the time until a fresh holding of sl that does not fit would fit
// through the leases of the holdings in its way ending, or -1 when it fits.
func (r *shared) wait(kind lockKind, sl slot, permits, limit int, now time.Time) time.Duration {
	if r.fits(kind, sl, permits, limit) {
		return -1
	}
	var end time.Time
	switch {
	case kind == semLock:
		// The permits come back in the order of the leases' ends.
		hs := make([]*holding, 0, len(r.holds))
		for _, h := range r.holds {
			hs = append(hs, h)
		}
		slices.SortFunc(hs, func(a, b *holding) int { return a.expiry.Compare(b.expiry) })
		need := r.used + permits - limit
		for _, h := range hs {
			end, need = h.expiry, need-h.permits
			if need <= 0 {
				break
			}
		}
	case !sl.write:
		end = r.holds[slot{r.writer, true}].expiry
	default:
		for s, h := range r.holds {
			if s.owner != sl.owner && h.expiry.After(end) {
				end = h.expiry
			}
		}
	}
	return end.Sub(now)
}

// getShared returns the record of tp at now, lazily expired; a fresh one
// when the lock is idle. Called with s.mu held; hand it back with putShared.
func (s *Store) getShared(tp topic, now time.Time) *shared {
	r := s.shared[tp]
	if r == nil {
		return &shared{}
	}
	r.expire(now)
	return r
}

// putShared stores r as the record of tp, or drops it when it is idle.
// Called with s.mu held.
func (s *Store) putShared(tp topic, r *shared, now time.Time) {
	r.settle()
	if r.idle() {
		delete(s.shared, tp)
		return
	}
	if _, ok := s.shared[tp]; ok {
		return
	}
	s.shared[tp] = r
	if len(s.shared) > s.sharedSweepAt {
		s.sweepShared(now)
	}
}

// sweepShared drops every shared record that has become idle since it was
// last touched, as sweep does for mutexes. Called with s.mu held.
func (s *Store) sweepShared(now time.Time) {
	for tp, r := range s.shared {
		r.expire(now)
		if r.idle() {
			delete(s.shared, tp)
		}
	}
	s.sharedSweepAt = max(2*len(s.shared), minSweep)
}

// sharedKeys returns the pseudo-keys of the live shared records of names
// that contain substr (see Keys). Called with s.mu held, after a sweep.
func (s *Store) sharedKeys(substr string) []string {
	var keys []string
	for tp, r := range s.shared {
		if !strings.Contains(tp.name, substr) {
			continue
		}
		suffix := ":rw"
		if tp.kind == semLock {
			suffix = ":sem"
		}
		if len(r.holds) > 0 {
			keys = append(keys, tp.name+suffix)
		}
		if r.room.Len() > 0 {
			keys = append(keys, tp.name+suffix+":q")
		}
	}
	return keys
}

// newestFence is the Fence of a "not acquired" answer on r: the newest
// token issued for the lock, which no earlier grant of it exceeds.
func (s *Store) newestFence(r *shared) int64 {
	if r.newest > 0 {
		return r.newest
	}
	return s.lastFence
}

// grantPass evicts lapsed waiters, then grants holdings to the head of
// the queue and on as long as the head fits, telling each grantee. It
// stops at a head that does not fit. Called with s.mu held.
func (s *Store) grantPass(tp topic, r *shared, now time.Time) {
	if r.room.Len() == 0 {
		return
	}
	r.evict(now)
	for {
		head, ok := r.room.Head()
		if !ok {
			return
		}
		g, ok := r.grants[head]
		if !ok {
			s.publish(tp, head) // not reached: every queued ticket has its grant
			return
		}
		if h := r.holds[g.slot]; h != nil {
			// The owner took the slot meanwhile with another ticket.
			if h.permits != g.permits {
				s.publish(tp, head) // its attempt reports the mismatch
				return
			}
			h.count++
			h.lastTicket = head
			if end := now.Add(g.lease); h.expiry.Before(end) {
				r.setExpiry(h, end)
			}
			r.leave(head)
			s.publish(tp, head+" "+strconv.FormatInt(h.fence, 10))
			continue
		}
		if g.slot.write && r.holds[slot{g.slot.owner, false}] != nil {
			// The owner took a read hold meanwhile (barging): granting
			// would upgrade it. Its attempt reports ErrUpgrade, and it
			// leaves.
			s.publish(tp, head)
			return
		}
		if !r.fits(tp.kind, g.slot, g.permits, r.limit) {
			return
		}
		f, ok := s.fence(now)
		if !ok {
			s.publish(tp, head) // no token left: its attempt reports it
			return
		}
		r.newest = f
		r.add(g.slot, &holding{count: 1, permits: g.permits, fence: f, lastTicket: head, expiry: now.Add(g.lease)})
		r.leave(head)
		s.publish(tp, head+" "+strconv.FormatInt(f, 10))
	}
}

// passOn passes the lock on after holdings ended: the grant pass, then, if
// nobody is left queued, a wake-up of every waiter of the lock. Called
// with s.mu held.
func (s *Store) passOn(tp topic, r *shared, now time.Time) {
	s.grantPass(tp, r, now)
	if r.room.Len() == 0 {
		s.publish(tp, broadcast)
	}
}

// view is one of a client's views of its read-write locks (read or write)
// or of its semaphores. Its methods act on the store as the client's do:
// they check ctx, honour stalls and fail with [ErrKilled] after Kill.
type view struct {
	c     *Client
	kind  lockKind
	write bool // the write view of a read-write lock
}

// errUpgrade and errMismatch are the refusals of the views.
var (
	errUpgrade     = fmt.Errorf("memory: %w", driver.ErrUpgrade)
	errMismatchLim = fmt.Errorf("memory: %w: another limit is recorded", driver.ErrMismatch)
	errMismatchPer = fmt.Errorf("memory: %w: the owner holds other permits", driver.ErrMismatch)
)

func (v *view) topic(name string) topic { return topic{v.kind, name} }

func (v *view) slot(owner string) slot { return slot{owner, v.write} }

// Acquire implements driver.Backend: it takes a fresh holding if it fits,
// ignoring the fair queue, or re-enters the owner's holding.
func (v *view) Acquire(ctx context.Context, req driver.AcquireRequest) (driver.AcquireResult, error) {
	return v.acquire(ctx, req, false, 0)
}

// AcquireFair implements driver.Queue: Acquire in arrival order. A zero
// waiterTTL makes a single attempt that honours the queue without joining
// it.
func (v *view) AcquireFair(ctx context.Context, req driver.AcquireRequest, waiterTTL time.Duration) (driver.AcquireResult, error) {
	return v.acquire(ctx, req, true, waiterTTL)
}

func (v *view) acquire(ctx context.Context, req driver.AcquireRequest, fair bool, waiterTTL time.Duration) (driver.AcquireResult, error) {
	permits := 0
	if v.kind == semLock {
		if req.Limit < 1 || req.Permits < 1 || req.Permits > req.Limit {
			return driver.AcquireResult{}, fmt.Errorf("memory: a semaphore request for %d permits of a limit of %d", req.Permits, req.Limit)
		}
		permits = req.Permits
	}
	now, err := v.c.begin(ctx)
	if err != nil {
		return driver.AcquireResult{}, err
	}
	s := v.c.s
	defer s.mu.Unlock()
	tp := v.topic(req.Name)
	r := s.getShared(tp, now)
	defer s.putShared(tp, r, now)
	s.grantPass(tp, r, now)

	sl := v.slot(req.Owner)
	h := r.holds[sl]
	switch {
	case v.kind == rwLock && v.write && h == nil && r.holds[slot{req.Owner, false}] != nil:
		return driver.AcquireResult{}, errUpgrade
	case v.kind == semLock && r.limit != 0 && r.limit != req.Limit:
		return driver.AcquireResult{}, errMismatchLim
	case v.kind == semLock && h != nil && h.permits != permits:
		return driver.AcquireResult{}, errMismatchPer
	}

	if h != nil {
		// Re-entry: count once per ticket, never shorten the lease.
		if h.lastTicket != req.Ticket {
			h.count++
			h.lastTicket = req.Ticket
		}
		if end := now.Add(req.Lease); h.expiry.Before(end) {
			r.setExpiry(h, end)
		}
		r.leave(req.Ticket)
		s.grantPass(tp, r, now)
		return driver.AcquireResult{Acquired: true, Fence: h.fence, Count: h.count, Position: -1}, nil
	}

	head, queued := r.room.Head()
	first := !fair || !queued || head == req.Ticket ||
		(v.kind == rwLock && !v.write && r.writer == req.Owner) // a write holder reads at once
	if first && r.fits(v.kind, sl, permits, req.Limit) {
		f, ok := s.fence(now)
		if !ok {
			return driver.AcquireResult{}, errFence
		}
		r.newest = f
		if v.kind == semLock {
			r.limit = req.Limit
		}
		r.add(sl, &holding{count: 1, permits: permits, fence: f, lastTicket: req.Ticket, expiry: now.Add(req.Lease)})
		r.leave(req.Ticket)
		s.grantPass(tp, r, now) // the next heads may fit too (a run of readers)
		return driver.AcquireResult{Acquired: true, Fence: f, Count: 1, Position: -1}, nil
	}

	res := driver.AcquireResult{TTL: r.wait(v.kind, sl, permits, req.Limit, now), Position: -1, Fence: s.newestFence(r)}
	if fair && waiterTTL > 0 {
		if v.kind == semLock {
			r.limit = req.Limit // recorded while it waits
		}
		deadline := now.Add(waiterTTL)
		if until := deadline.Add(queueGrace); r.room.Len() == 0 || until.After(r.queueUntil) {
			r.queueUntil = until
		}
		if r.room.Position(req.Ticket) < 0 {
			if r.grants == nil {
				r.grants = make(map[string]sgrant)
			}
			r.grants[req.Ticket] = sgrant{slot: sl, permits: permits, lease: min(req.Lease, waiterTTL), ttl: waiterTTL}
		}
		res.Position = r.room.Join(req.Ticket, deadline)
	}
	return res, nil
}

// Release implements driver.Backend: it undoes one acquisition of the
// view's holding by owner (with a non-empty ticket, only if the latest
// acquisition carried it). The holding's final release hands holdings to
// the queue's head and on, and wakes every waiter when nobody is left
// queued.
func (v *view) Release(ctx context.Context, name, owner, ticket string) (held bool, remaining int, err error) {
	now, err := v.c.begin(ctx)
	if err != nil {
		return false, 0, err
	}
	s := v.c.s
	defer s.mu.Unlock()
	tp := v.topic(name)
	r := s.getShared(tp, now)
	defer s.putShared(tp, r, now)
	s.grantPass(tp, r, now)
	sl := v.slot(owner)
	h := r.holds[sl]
	if h == nil || (ticket != "" && h.lastTicket != ticket) {
		return false, 0, nil
	}
	h.count--
	if h.count > 0 {
		return true, h.count, nil
	}
	r.drop(sl)
	s.passOn(tp, r, now)
	return true, 0, nil
}

// ForceRelease implements driver.ForceReleaser: it ends every holding of
// the lock (read and write alike), marks each revoked for the rest of its
// lease plus a second, and passes the lock on as a final Release does.
func (v *view) ForceRelease(ctx context.Context, name string) (bool, error) {
	now, err := v.c.begin(ctx)
	if err != nil {
		return false, err
	}
	s := v.c.s
	defer s.mu.Unlock()
	tp := v.topic(name)
	r := s.getShared(tp, now)
	defer s.putShared(tp, r, now)
	s.grantPass(tp, r, now)
	if len(r.holds) == 0 {
		return false, nil
	}
	if r.revoked == nil {
		r.revoked = make(map[slot]time.Time)
	}
	for sl, h := range r.holds {
		if until := h.expiry.Add(time.Second); until.After(r.revoked[sl]) {
			r.revoked[sl] = until
		}
		r.drop(sl)
	}
	s.passOn(tp, r, now)
	return true, nil
}

// Extend implements driver.Backend: it sets the remaining lease of owner's
// holding of the view to lease; false when owner does not hold it, with an
// error matching driver.ErrRevoked when ForceRelease ended the holding.
func (v *view) Extend(ctx context.Context, name, owner string, lease time.Duration) (bool, error) {
	now, err := v.c.begin(ctx)
	if err != nil {
		return false, err
	}
	defer v.c.s.mu.Unlock()
	return v.extend(name, owner, lease, now)
}

// ExtendBatch implements driver.BatchExtender: every item as Extend would,
// in one atomic step. It fails as a whole only when ctx is done or the
// client killed.
func (v *view) ExtendBatch(ctx context.Context, batch []driver.Extension) error {
	now, err := v.c.begin(ctx)
	if err != nil {
		return err
	}
	defer v.c.s.mu.Unlock()
	for i := range batch {
		e := &batch[i]
		e.Held, e.Err = v.extend(e.Name, e.Owner, e.Lease, now)
	}
	return nil
}

// extend is one Extend. Called with s.mu held.
func (v *view) extend(name, owner string, lease time.Duration, now time.Time) (bool, error) {
	s := v.c.s
	tp := v.topic(name)
	r := s.getShared(tp, now)
	defer s.putShared(tp, r, now)
	sl := v.slot(owner)
	h := r.holds[sl]
	if h == nil {
		if _, ok := r.revoked[sl]; ok {
			return false, errRevoked
		}
		return false, nil
	}
	r.setExpiry(h, now.Add(lease))
	return true, nil
}

// Leave implements driver.Queue: it removes ticket and its grant from the
// queue, then grants to the head and on what fits. A grant made to ticket
// before is not undone (Release with the ticket does that).
func (v *view) Leave(ctx context.Context, name, ticket string) error {
	now, err := v.c.begin(ctx)
	if err != nil {
		return err
	}
	s := v.c.s
	defer s.mu.Unlock()
	tp := v.topic(name)
	r := s.getShared(tp, now)
	defer s.putShared(tp, r, now)
	r.leave(ticket)
	s.grantPass(tp, r, now)
	return nil
}

// Subscribe implements driver.Notifier for the view's lock kind (the read
// and write views share their topic), as Client.Subscribe does.
func (v *view) Subscribe(ctx context.Context, name, ticket string) (driver.Subscription, error) {
	if _, err := v.c.begin(ctx); err != nil {
		return nil, err
	}
	s := v.c.s
	defer s.mu.Unlock()
	return s.subscribe(v.c, v.topic(name), ticket), nil
}

// SubscribeActive implements driver.Notifier as Client.SubscribeActive
// does.
func (v *view) SubscribeActive(name, ticket string) (driver.Subscription, bool) {
	s := v.c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if v.c.killed {
		return nil, false
	}
	return s.subscribe(v.c, v.topic(name), ticket), true
}

// Inspect implements driver.Inspector: for a read-write lock the write
// holder as Owner, Count, Fence and TTL; for a semaphore Limit and Used;
// every holding in Holders, in the order of their fences; Waiters counts
// queued tickets, including lapsed ones not yet evicted.
func (v *view) Inspect(ctx context.Context, name string) (driver.State, error) {
	now, err := v.c.begin(ctx)
	if err != nil {
		return driver.State{}, err
	}
	s := v.c.s
	defer s.mu.Unlock()
	tp := v.topic(name)
	r := s.getShared(tp, now)
	defer s.putShared(tp, r, now)
	st := driver.State{Waiters: r.room.Len()}
	for sl, h := range r.holds {
		st.Holders = append(st.Holders, driver.Holding{Owner: sl.owner, Write: sl.write, Count: h.count, Permits: h.permits, Fence: h.fence, TTL: h.expiry.Sub(now)})
		if sl.write {
			st.Owner, st.Count, st.Fence, st.TTL = sl.owner, h.count, h.fence, h.expiry.Sub(now)
		}
	}
	slices.SortFunc(st.Holders, func(a, b driver.Holding) int { return cmp.Compare(a.Fence, b.Fence) })
	if v.kind == semLock {
		st.Limit, st.Used = r.limit, r.used
	}
	return st, nil
}

// InspectQueue implements driver.Inspector: the queue of the lock, head
// first.
func (v *view) InspectQueue(ctx context.Context, name string) ([]driver.Waiter, error) {
	now, err := v.c.begin(ctx)
	if err != nil {
		return nil, err
	}
	s := v.c.s
	defer s.mu.Unlock()
	tp := v.topic(name)
	r := s.getShared(tp, now)
	defer s.putShared(tp, r, now)
	tickets, deadlines := r.room.Tickets()
	ws := make([]driver.Waiter, len(tickets))
	for i, t := range tickets {
		g := r.grants[t]
		ws[i] = driver.Waiter{Position: i, Ticket: t, Owner: g.slot.owner, Heartbeat: deadlines[i].Sub(now), TTL: g.ttl}
	}
	return ws, nil
}
