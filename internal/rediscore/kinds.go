package rediscore

import (
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/disgolock/disgo/locker/driver"
)

// The scripts of read-write locks and semaphores (the kinds). kindlib.lua
// holds their shared helpers and documents their keys; each script gets the
// helpers of lib.lua and kindlib.lua it uses (see assemble).
var (
	//go:embed lua/kindlib.lua
	kindLibLua string
	//go:embed lua/kind_acquire.lua
	kindAcquireLua string
	//go:embed lua/kind_release.lua
	kindReleaseLua string
	//go:embed lua/kind_extend.lua
	kindExtendLua string
	//go:embed lua/kind_leave.lua
	kindLeaveLua string
	//go:embed lua/kind_forcerelease.lua
	kindForceReleaseLua string
	//go:embed lua/kind_inspect.lua
	kindInspectLua string
)

// Script sources of the kinds as the adapters load them. kind_extend.lua,
// run for every renewal, goes without the helpers. The kinds' queues are
// listed by inspectqueue.lua (InspectQueueLua), which reads the queue and
// waiter records at the same KEYS indexes.
var (
	KindAcquireLua      = withKindLib(kindAcquireLua)
	KindReleaseLua      = withKindLib(kindReleaseLua)
	KindExtendLua       = kindExtendLua
	KindLeaveLua        = withKindLib(kindLeaveLua)
	KindForceReleaseLua = withKindLib(kindForceReleaseLua)
	KindInspectLua      = withLib(kindInspectLua)
)

// withKindLib assembles src with the helpers of lib.lua and kindlib.lua it
// uses (see assemble).
func withKindLib(src string) string { return assemble(src, kindHelpers) }

// kindHelpers are the definitions of lib.lua, then kindlib.lua, parsed once
// for every kind's script.
var kindHelpers = parseHelpers(libLua, kindLibLua)

// Kind is a kind of lock with keys of its own beside a name's mutex: a
// read-write lock or a semaphore.
type Kind uint8

// The kinds.
const (
	RW Kind = iota + 1
	Semaphore
)

// Indexes into the slice KindKeys returns (the script order of KEYS).
// Queue, channel and waiter records are at the indexes of the mutex's keys.
const (
	KindKeyHolders = iota // hash: holding id → record, and the counters
	KindKeyFence          // string: last fencing token issued
	KindKeyQueue          // zset: ticket → arrival sequence
	KindKeyChannel        // the shard channel
	KindKeyWaiters        // hash: ticket → waiter record
	KindKeyRevoked        // zset: holding id → lease deadline of a holding forced out
	KindKeyLeases         // zset: holding id → lease deadline
	NumKindKeys
)

// kindSuffixes end the keys of a name of each kind, in the order of the
// KindKey* indexes: Prefix + ":{name}:" + suffix. See kindlib.lua for
// what each key holds.
var kindSuffixes = [...][NumKindKeys]string{
	RW:        {"rw.h", "rw.f", "rw.q", "rw.ch", "rw.qw", "rw.rv", "rw.e"},
	Semaphore: {"sem.h", "sem.f", "sem.q", "sem.ch", "sem.qw", "sem.rv", "sem.e"},
}

// KindKeys returns the NumKindKeys keys of name of kind k, in script
// order. All share the name's hash tag (the tag of the name's mutex keys),
// and none is a key of the mutex or of another kind.
func (l Layout) KindKeys(k Kind, name string) []string {
	base := l.Prefix + ":" + Tag(name) + ":"
	sufs := &kindSuffixes[k]
	var b strings.Builder
	n := 0
	for _, s := range sufs {
		n += len(base) + len(s)
	}
	b.Grow(n)
	for _, s := range sufs {
		b.WriteString(base)
		b.WriteString(s)
	}
	all, off := b.String(), 0
	keys := make([]string, NumKindKeys)
	for i, s := range sufs {
		keys[i] = all[off : off+len(base)+len(s)]
		off += len(base) + len(s)
	}
	return keys
}

// KindChannel returns the wake-up channel of name of kind k.
func (l Layout) KindChannel(k Kind, name string) string {
	return l.Prefix + ":" + Tag(name) + ":" + kindSuffixes[k][KindKeyChannel]
}

// KindAcquireArgs returns ARGV of kind_acquire.lua. kind is 'r' (read
// hold), 'w' (write hold) or 's' (semaphore holding, taking req.Permits of
// req.Limit).
func KindAcquireArgs(kind byte, req driver.AcquireRequest, fair bool, waiterTTL, fenceRetention time.Duration, publish, inbox string) []string {
	f := "0"
	if fair {
		f = "1"
	}
	permits, limit := "0", "0"
	if kind == 's' {
		permits, limit = strconv.Itoa(req.Permits), strconv.Itoa(req.Limit)
	}
	return []string{req.Owner, req.Ticket, Ms(req.Lease), f, Ms(waiterTTL), Ms(fenceRetention), publish, inbox,
		string(kind), permits, limit}
}

// KindReleaseArgs returns ARGV of kind_release.lua.
func KindReleaseArgs(kind byte, owner, ticket, publish string, fenceRetention time.Duration) []string {
	return []string{owner, ticket, publish, Ms(fenceRetention), string(kind)}
}

// KindExtendArgs returns ARGV of kind_extend.lua.
func KindExtendArgs(kind byte, owner string, lease time.Duration) []string {
	return []string{owner, Ms(lease), string(kind)}
}

// KindLeaveArgs returns ARGV of kind_leave.lua.
func KindLeaveArgs(kind byte, ticket, publish string, fenceRetention time.Duration) []string {
	return []string{ticket, publish, Ms(fenceRetention), string(kind)}
}

// KindForceReleaseArgs returns ARGV of kind_forcerelease.lua.
func KindForceReleaseArgs(kind byte, publish string, fenceRetention time.Duration) []string {
	return []string{publish, Ms(fenceRetention), string(kind)}
}

// ErrMismatch is the error of a semaphore acquisition whose limit or
// permits do not match the name's (kind_acquire.lua replied with an error
// starting "DISGO_MISMATCH"). It matches driver.ErrMismatch.
var ErrMismatch = fmt.Errorf("rediscore: %w", driver.ErrMismatch)

// ErrUpgrade is the error of a write acquisition by an owner that holds a
// read hold and no write hold (an error reply starting "DISGO_UPGRADE"). It
// matches driver.ErrUpgrade.
var ErrUpgrade = fmt.Errorf("rediscore: %w", driver.ErrUpgrade)

// KindError decodes the text of an error reply of kind_acquire.lua: one of
// ErrMismatch and ErrUpgrade (wrapping the server's words), or nil when the
// reply is not one of them.
func KindError(msg string) error {
	switch {
	case strings.HasPrefix(msg, "DISGO_MISMATCH"):
		return fmt.Errorf("%w (%s)", ErrMismatch, msg)
	case strings.HasPrefix(msg, "DISGO_UPGRADE"):
		return fmt.Errorf("%w (%s)", ErrUpgrade, msg)
	}
	return nil
}

// ParseKindRelease decodes the reply of kind_release.lua.
func ParseKindRelease(r int64) (held bool, remaining int) { return ParseRelease(r) }

// ParseKindForceRelease decodes the reply of kind_forcerelease.lua:
// whether any holding was forced out.
func ParseKindForceRelease(r []string) (held bool, err error) {
	switch {
	case len(r) == 1 && r[0] == "0":
		return false, nil
	case len(r) == 2 && r[0] == "1":
		if n, err := positive(r[1]); err == nil && n > 0 {
			return true, nil
		}
	}
	return false, fmt.Errorf("rediscore: force release: unexpected reply %q", r)
}

// HoldingRecord is a holding of a read-write lock or semaphore as
// kind_acquire.lua writes it in the holders hash.
type HoldingRecord struct {
	Count  int
	Fence  int64
	Ticket string
	Weight int64 // permits: 1 for a read hold, RWWeight for a write hold
}

// RWWeight is the weight of a write hold (kindlib.lua's RW_WEIGHT), and
// the limit a read-write lock's holdings are counted against.
const RWWeight = 1 << 40

// ParseHoldingRecord decodes a holding record "<count> <fence> <ticket>
// <weight>".
func ParseHoldingRecord(v string) (HoldingRecord, error) {
	f := strings.Split(v, " ")
	if len(f) != 4 || f[2] == "" {
		return HoldingRecord{}, fmt.Errorf("rediscore: holding record %q: not 4 fields", v)
	}
	n, err1 := positive(f[0])
	fence, err2 := positive(f[1])
	w, err3 := positive(f[3])
	if err := errors.Join(err1, err2, err3); err != nil || n > 1<<31-1 {
		return HoldingRecord{}, fmt.Errorf("rediscore: holding record %q: bad number", v)
	}
	return HoldingRecord{Count: int(n), Fence: fence, Ticket: f[2], Weight: w}, nil
}

// String formats r as a holding record, as ParseHoldingRecord reads it.
func (r HoldingRecord) String() string {
	return strconv.Itoa(r.Count) + " " + strconv.FormatInt(r.Fence, 10) + " " + r.Ticket + " " + strconv.FormatInt(r.Weight, 10)
}

// ParseKindInspect decodes the reply of kind_inspect.lua for kind k:
// live holdings (lease deadline after the server time) in
// State.Holders; for a read-write lock the write holder also as Owner,
// Count, Fence and TTL; for a semaphore Limit (while the name has live
// holdings or waiters) and Used.
func ParseKindInspect(k Kind, reply []string) (driver.State, error) {
	var st driver.State
	if len(reply) < 3 || (len(reply)-3)%3 != 0 {
		return st, fmt.Errorf("rediscore: inspect: reply of %d elements", len(reply))
	}
	now, err := strconv.ParseInt(reply[0], 10, 64)
	if err != nil {
		return st, fmt.Errorf("rediscore: inspect: server time %q", reply[0])
	}
	waiters, err := strconv.Atoi(reply[1])
	if err != nil || waiters < 0 {
		return st, fmt.Errorf("rediscore: inspect: queue length %q", reply[1])
	}
	st.Waiters = waiters
	for i := 3; i < len(reply); i += 3 {
		id, dl, rec := reply[i], reply[i+1], reply[i+2]
		if len(id) < 2 || id[1] != ' ' {
			return driver.State{}, fmt.Errorf("rediscore: inspect: holding id %q", id)
		}
		deadline, err := strconv.ParseFloat(dl, 64)
		if err != nil || !(deadline >= 0 && deadline <= 1<<53) {
			return driver.State{}, fmt.Errorf("rediscore: inspect: lease deadline %q of %q", dl, id)
		}
		if int64(deadline) <= now {
			continue // lapsed, not evicted yet
		}
		r, err := ParseHoldingRecord(rec)
		if err != nil {
			return driver.State{}, fmt.Errorf("rediscore: inspect: %w", err)
		}
		h := driver.Holding{Owner: id[2:], Count: r.Count, Fence: r.Fence, TTL: time.Duration(int64(deadline)-now) * time.Millisecond}
		switch {
		case k == Semaphore && id[0] == 's':
			if r.Weight > 1<<30 {
				return driver.State{}, fmt.Errorf("rediscore: inspect: %d permits", r.Weight)
			}
			h.Permits = int(r.Weight)
			st.Used += h.Permits
		case k == RW && id[0] == 'w':
			h.Write = true
			st.Owner, st.Count, st.Fence, st.TTL = h.Owner, h.Count, h.Fence, h.TTL
		case k == RW && id[0] == 'r':
		default:
			return driver.State{}, fmt.Errorf("rediscore: inspect: holding id %q", id)
		}
		st.Holders = append(st.Holders, h)
	}
	if k == Semaphore && reply[2] != "" && (len(st.Holders) > 0 || st.Waiters > 0) {
		limit, err := strconv.Atoi(reply[2])
		if err != nil || limit < 1 {
			return driver.State{}, fmt.Errorf("rediscore: inspect: limit %q", reply[2])
		}
		st.Limit = limit
	}
	return st, nil
}

// ParseKindQueue decodes the reply of inspectqueue.lua run on the keys of
// a kind, whose waiter records are "<heartbeat deadline ms> <waiter TTL ms>
// <grant lease ms> <inbox> <kind> <permits> <limit> <owner>". A ticket whose
// record is missing or unreadable is listed with only its ticket and
// position.
func ParseKindQueue(reply []string) ([]driver.Waiter, error) {
	return parseQueue(reply, 8)
}
