// Package rediscore is disgo's Redis protocol: the key layout, the embedded
// Lua scripts (one copy, each headed by its KEYS, ARGV and replies), the
// arguments they take and the decoding of their replies. internal/redisstore
// runs them, for both Redis adapters.
package rediscore

import (
	_ "embed"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/disgolock/disgo/internal/token"
	"github.com/disgolock/disgo/locker"
	"github.com/disgolock/disgo/locker/driver"
)

// The embedded sources. lib.lua holds the helpers the scripts share; it
// defines functions only, and each script gets those it uses (see
// assemble).
var (
	//go:embed lua/lib.lua
	libLua string
	//go:embed lua/acquire.lua
	acquireLua string
	//go:embed lua/release.lua
	releaseLua string
	//go:embed lua/extend.lua
	extendLua string
	//go:embed lua/leave.lua
	leaveLua string
	//go:embed lua/inspect.lua
	inspectLua string
	//go:embed lua/inspectqueue.lua
	inspectQueueLua string
	//go:embed lua/forcerelease.lua
	forceReleaseLua string
	//go:embed lua/acquireall.lua
	acquireAllLua string
)

// Script sources as the adapters load them. extend.lua, run for every
// renewal, needs no helper and goes without lib.lua.
var (
	AcquireLua      = withLib(acquireLua)
	ReleaseLua      = withLib(releaseLua)
	ExtendLua       = extendLua
	LeaveLua        = withLib(leaveLua)
	InspectLua      = withLib(inspectLua)
	InspectQueueLua = withLib(inspectQueueLua)
	ForceReleaseLua = withLib(forceReleaseLua)
	AcquireAllLua   = withLib(acquireAllLua)
)

// withLib assembles src with the helpers of lib.lua it uses (see
// assemble).
func withLib(src string) string { return assemble(src, libHelpers) }

// libHelpers are the definitions of lib.lua, parsed once for every script.
var libHelpers = parseHelpers(libLua)

// DefaultPrefix is the key prefix when an adapter is given none.
const DefaultPrefix = "disgo"

// DefaultFenceRetention is how long the last fencing token of a name is
// kept after it was issued. Within it, tokens increase even if the server
// clock steps back; beyond it they rely on the server clock (see Keys).
const DefaultFenceRetention = 7 * 24 * time.Hour

// Publish commands, passed to the scripts.
const (
	Sharded = "SPUBLISH"
	Classic = "PUBLISH"
)

// Broadcast is the wake-up message addressed to every waiter of a name.
const Broadcast = "*"

// Indexes into the slice Keys returns.
const (
	KeyLock = iota
	KeyFence
	KeyQueue
	KeyChannel
	KeyWaiters
	KeyRevoked
	NumKeys
)

// Layout builds the keys of lock names under one prefix.
type Layout struct {
	Prefix string
}

// ValidatePrefix rejects prefixes that would break the hash tag.
func ValidatePrefix(p string) error {
	if strings.ContainsAny(p, "{}") {
		return fmt.Errorf("prefix %q must not contain '{' or '}'", p)
	}
	return nil
}

// Tag returns the hash tag of name: the name with '%', '{' and '}' escaped,
// inside braces. It is never empty and never contains a brace, so every key
// of one lock hashes to the same cluster slot whatever the name contains.
func Tag(name string) string {
	var b strings.Builder
	b.Grow(len(name) + 2)
	writeTag(&b, name)
	return b.String()
}

func writeTag(b *strings.Builder, name string) {
	b.WriteByte('{')
	if !strings.ContainsAny(name, "%{}") {
		b.WriteString(name) // the common case, copied at once
	} else {
		for i := 0; i < len(name); i++ {
			switch c := name[i]; c {
			case '%':
				b.WriteString("%25")
			case '{':
				b.WriteString("%7B")
			case '}':
				b.WriteString("%7D")
			default:
				b.WriteByte(c)
			}
		}
	}
	b.WriteByte('}')
}

// Keys returns the NumKeys keys of name, in script order: lock string, fence,
// queue, channel, waiter records, revoked marker. All share one hash tag.
//
// Fencing tokens are max(last+1, server TIME in µs). They are strictly
// increasing per name as long as the fence key survives (it is kept
// DefaultFenceRetention after each issue), and, after it was evicted or
// expired, as long as the server clock has not stepped back past the last
// token; a failover keeps them increasing if the new primary's clock is not
// behind the old one's by more than the time between two acquisitions.
func (l Layout) Keys(name string) []string {
	// One allocation holds every key, and one the slice (a name that needs
	// escaping takes one more): this runs for every lock operation.
	tag := name
	if strings.ContainsAny(name, "%{}") {
		tag = Tag(name)[1:] // escaped once, not once per key
		tag = tag[:len(tag)-1]
	}
	baseLen := len(l.Prefix) + 1 + len(tag) + 2 + 1
	var b strings.Builder
	b.Grow(NumKeys*baseLen + len(keySuffixesLen))
	keys := make([]string, NumKeys)
	for _, suf := range keySuffixes {
		b.WriteString(l.Prefix)
		b.WriteString(":{")
		b.WriteString(tag)
		b.WriteString("}:")
		b.WriteString(suf)
	}
	all, off := b.String(), 0
	for i, suf := range keySuffixes {
		n := baseLen + len(suf)
		keys[i] = all[off : off+n]
		off += n
	}
	return keys
}

// keySuffixes end the keys of a name, in the order of the Key* indexes.
//
// A name's read-write lock and semaphore are locks of their own, with keys
// of their own (see KindKeys, and kindlib.lua for what each holds), under
// the same hash tag: Prefix + ":{name}:" + "rw.h", "rw.f", "rw.q", "rw.ch",
// "rw.qw", "rw.rv", "rw.e" for the read-write lock (holders hash, fence,
// queue, channel, waiter records, revoked holdings, lease deadlines) and
// the same with "sem." for the semaphore. No suffix of one kind is a
// suffix of another, so the keys of the three locks of a name never meet.
var keySuffixes = [NumKeys]string{"lock", "fence", "q", "ch", "qw", "rv"}

// keySuffixesLen is every suffix back to back, for its length.
const keySuffixesLen = "lock" + "fence" + "q" + "ch" + "qw" + "rv"

// Channel returns the wake-up channel of name.
func (l Layout) Channel(name string) string {
	return l.Prefix + ":" + Tag(name) + ":ch"
}

// NameOfChannel inverts Channel; ok is false for foreign channels.
func (l Layout) NameOfChannel(ch string) (name string, ok bool) {
	p := l.Prefix + ":{"
	if !strings.HasPrefix(ch, p) || !strings.HasSuffix(ch, "}:ch") {
		return "", false
	}
	esc := ch[len(p) : len(ch)-len("}:ch")]
	var b strings.Builder
	for i := 0; i < len(esc); i++ {
		if esc[i] == '%' && i+2 < len(esc) {
			switch esc[i+1 : i+3] {
			case "25":
				b.WriteByte('%')
			case "7B":
				b.WriteByte('{')
			case "7D":
				b.WriteByte('}')
			default:
				return "", false
			}
			i += 2
			continue
		}
		b.WriteByte(esc[i])
	}
	return b.String(), true
}

// Ms renders a duration as whole milliseconds, rounding up so that no
// positive duration becomes zero. It never overflows: a duration within a
// millisecond of the int64 range renders as its largest whole number of
// milliseconds, and a negative one as "0".
func Ms(d time.Duration) string {
	if d <= 0 {
		return "0"
	}
	ms := d / time.Millisecond
	if d%time.Millisecond != 0 {
		ms++
	}
	return strconv.FormatInt(int64(ms), 10)
}

// NoInbox is the inbox argument of a store without an inbox channel: grants
// to its waiters go to the name's channel.
const NoInbox = "-"

// NewInbox returns a fresh inbox id for one store: random, unique per store,
// and free of spaces and braces.
func NewInbox() string { return token.New() }

// Inbox returns the channel of name on which the grants to the waiters of
// one store (identified by inbox) are published: the name's channel plus
// ":" and inbox. It has the name's hash tag, so it lives on the name's
// cluster slot.
func (l Layout) Inbox(name, inbox string) string {
	return l.Channel(name) + ":" + inbox
}

// AcquireArgs returns ARGV of acquire.lua. inbox is the store's inbox id,
// or NoInbox.
func AcquireArgs(req driver.AcquireRequest, fair bool, waiterTTL, fenceRetention time.Duration, publish, inbox string) []string {
	f := "0"
	if fair {
		f = "1"
	}
	return []string{req.Owner, req.Ticket, Ms(req.Lease), f, Ms(waiterTTL), Ms(fenceRetention), publish, inbox}
}

// ReleaseArgs returns ARGV of release.lua.
func ReleaseArgs(owner, ticket, publish string, fenceRetention time.Duration) []string {
	return []string{owner, ticket, publish, Ms(fenceRetention)}
}

// ExtendArgs returns ARGV of extend.lua.
func ExtendArgs(owner string, lease time.Duration) []string { return []string{owner, Ms(lease)} }

// LeaveArgs returns ARGV of leave.lua.
func LeaveArgs(ticket, publish string) []string { return []string{ticket, publish} }

// ErrFenceRecord is the error of an acquisition when the store's fence
// record of the name holds no token below 2^63-1. It matches
// driver.ErrFence.
var ErrFenceRecord = fmt.Errorf("rediscore: %w: the fence record of the name is not a number below 2^63-1", driver.ErrFence)

// ParseAcquire decodes the reply of acquire.lua, its elements as integers
// (the fencing token comes as a bulk string, which both clients parse as
// an int64 exactly). It fails for a reply of another shape and with
// ErrFenceRecord when the script could not issue a token.
func ParseAcquire(r []int64) (driver.AcquireResult, error) {
	switch {
	case len(r) == 3 && r[0] == 1:
		if r[1] <= 0 || r[2] <= 0 {
			return driver.AcquireResult{}, fmt.Errorf("rediscore: acquire reply %v: fence and count must be positive", slices.Clone(r))
		}
		return driver.AcquireResult{Acquired: true, Fence: r[1], Count: int(r[2]), Position: -1}, nil
	case len(r) == 4 && r[0] == 0:
		if r[3] < 0 || r[2] < -1 {
			return driver.AcquireResult{}, fmt.Errorf("rediscore: acquire reply %v: negative fence or position", slices.Clone(r))
		}
		ttl := time.Duration(-1)
		if r[1] >= 0 && r[1] <= int64(locker.MaxLease/time.Millisecond) {
			ttl = time.Duration(r[1]) * time.Millisecond
		}
		return driver.AcquireResult{TTL: ttl, Position: int(r[2]), Fence: r[3]}, nil
	case len(r) == 3 && r[0] == -1:
		return driver.AcquireResult{}, ErrFenceRecord
	}
	return driver.AcquireResult{}, fmt.Errorf("rediscore: unexpected acquire reply %v", slices.Clone(r))
}

// ParseWake splits a wake-up message: "<ticket>" (a wake-up), "<ticket>
// <fence>" (the lock was granted to ticket with that fencing token) or
// Broadcast. fence is 0 for a plain wake-up.
func ParseWake(payload string) (ticket string, fence int64) {
	i := strings.IndexByte(payload, ' ')
	if i < 0 {
		return payload, 0
	}
	f, err := strconv.ParseInt(payload[i+1:], 10, 64)
	if err != nil || f <= 0 {
		return payload[:i], 0
	}
	return payload[:i], f
}

// ForceReleaseArgs returns ARGV of forcerelease.lua.
func ForceReleaseArgs(publish string, fenceRetention time.Duration) []string {
	return []string{publish, Ms(fenceRetention)}
}

// ParseForceRelease decodes the reply of forcerelease.lua: whether a
// holding was forced out.
func ParseForceRelease(r []string) (held bool, err error) {
	switch {
	case len(r) == 1 && r[0] == "0":
		return false, nil
	case len(r) == 3 && r[0] == "1":
		return true, nil
	}
	return false, fmt.Errorf("rediscore: force release: unexpected reply %q", r)
}

// ErrRevoked is the error of an extension whose owner's holding an
// operator forced out (extend.lua replied -1). It matches driver.ErrRevoked.
var ErrRevoked = fmt.Errorf("rediscore: %w", driver.ErrRevoked)

// ParseExtend decodes the reply of extend.lua.
func ParseExtend(r int64) (held bool, err error) {
	switch r {
	case 1:
		return true, nil
	case -1:
		return false, ErrRevoked
	}
	return false, nil
}

// ParseRelease decodes the reply of release.lua.
func ParseRelease(r int64) (held bool, remaining int) {
	if r < 0 {
		return false, 0
	}
	return true, int(r)
}

// ParseInspect decodes the reply of inspect.lua, given as owner plus the
// four integers (the fence parsed from its bulk string).
func ParseInspect(owner string, count, fence, pttl, waiters int64) driver.State {
	s := driver.State{Owner: owner, Count: int(count), Fence: fence, Waiters: int(waiters)}
	if pttl > 0 {
		s.TTL = time.Duration(pttl) * time.Millisecond
	}
	return s
}

// ParseQueue decodes the reply of inspectqueue.lua: the server time, then
// ticket and waiter record pairs in queue order. A ticket whose record is
// missing or unreadable is listed with only its ticket and position.
func ParseQueue(reply []string) ([]driver.Waiter, error) {
	return parseQueue(reply, 5)
}

// parseQueue decodes a reply of inspectqueue.lua whose waiter records have
// fields fields, the first two the heartbeat deadline and TTL and the
// owner last.
func parseQueue(reply []string, fields int) ([]driver.Waiter, error) {
	if len(reply)%2 != 1 {
		return nil, fmt.Errorf("rediscore: inspect queue: reply has %d elements, want an odd number", len(reply))
	}
	now, err := strconv.ParseInt(reply[0], 10, 64)
	if err != nil {
		return nil, fmt.Errorf("rediscore: inspect queue: server time %q: %w", reply[0], err)
	}
	ws := make([]driver.Waiter, 0, len(reply)/2)
	for i := 1; i < len(reply); i += 2 {
		w := driver.Waiter{Position: len(ws), Ticket: reply[i]}
		f := strings.SplitN(reply[i+1], " ", fields)
		if len(f) == fields {
			deadline, err1 := strconv.ParseInt(f[0], 10, 64)
			ttl, err2 := strconv.ParseInt(f[1], 10, 64)
			if err1 == nil && err2 == nil {
				w.Heartbeat = time.Duration(deadline-now) * time.Millisecond
				w.TTL = time.Duration(ttl) * time.Millisecond
				w.Owner = f[fields-1]
			}
		}
		ws = append(ws, w)
	}
	return ws, nil
}

// Record is a lock string as acquire.lua writes it.
type Record struct {
	Count  int
	Waited bool // someone waited for this holding: its release looks at the queue and publishes
	Fence  int64
	Ticket string
	Owner  string
}

// ParseRecord decodes the value of a lock key, "<count>[w] <fence> <ticket>
// <owner>" (the owner last, as it may contain spaces). It fails for any
// other value, for a count or fence that is not a positive decimal without
// leading zeros, or for a fence above 2^63-1.
func ParseRecord(v string) (Record, error) {
	bad := func(why string) (Record, error) {
		return Record{}, fmt.Errorf("rediscore: lock record %q: %s", v, why)
	}
	count, rest, ok := strings.Cut(v, " ")
	if !ok {
		return bad("too few fields")
	}
	fence, rest, ok := strings.Cut(rest, " ")
	if !ok {
		return bad("too few fields")
	}
	ticket, owner, ok := strings.Cut(rest, " ")
	if !ok || ticket == "" || strings.ContainsAny(ticket, " \t\r\n\v\f") {
		return bad("no ticket and owner")
	}
	waited := strings.HasSuffix(count, "w")
	n, err := positive(strings.TrimSuffix(count, "w"))
	if err != nil || n > 1<<31-1 {
		return bad("bad hold count")
	}
	f, err := positive(fence)
	if err != nil {
		return bad("bad fence: " + err.Error())
	}
	return Record{Count: int(n), Waited: waited, Fence: f, Ticket: ticket, Owner: owner}, nil
}

// String formats r as a lock string, as ParseRecord reads it.
func (r Record) String() string {
	w := ""
	if r.Waited {
		w = "w"
	}
	return strconv.Itoa(r.Count) + w + " " + strconv.FormatInt(r.Fence, 10) + " " + r.Ticket + " " + r.Owner
}

// positive parses a positive decimal int64 without sign or leading zeros.
func positive(s string) (int64, error) {
	if s == "" || s[0] < '1' || s[0] > '9' {
		return 0, fmt.Errorf("%q is not a positive decimal", s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%q is not a positive decimal", s)
		}
	}
	return strconv.ParseInt(s, 10, 64)
}

// ACLRules returns the Redis ACL rules a least-privileged user of the
// lock store needs under prefix, for ACL SETUSER or an ACL file: the keys
// and channels of the prefix only, the commands the adapters send (EVALSHA
// and EVAL, the (sharded) subscription commands, PING and the connection
// handshake) and the commands the scripts call. On Redis Cluster add
// +cluster|slots +cluster|shards +cluster|nodes (the clients read the
// topology) and +readonly. A user without the channels still locks and
// unlocks correctly: scripts ignore a refused publish, and waiters fall
// back to their re-checks.
func ACLRules(prefix string) string {
	return "resetkeys ~" + prefix + ":* resetchannels &" + prefix + ":* -@all " +
		"+evalsha +eval +ssubscribe +sunsubscribe +subscribe +unsubscribe +ping +hello +auth +client|tracking +select " +
		"+get +set +del +exists +pexpire +pttl +time +zadd +zrem +zrange +zscore +zrank +zcard +zpopmin +hget +hset +hdel +spublish +publish " +
		"+hmget +zrangebyscore +zcount +zunionstore +zremrangebyscore"
}

// Settings are the adapter options both Redis adapters share, resolved.
type Settings struct {
	Layout         Layout
	FenceRetention time.Duration
	Publish        string // Sharded or Classic
}

// Resolve applies the defaults to the shared adapter options and validates
// them: an empty prefix means DefaultPrefix, a zero retention
// DefaultFenceRetention. It fails with a *locker.ArgumentError for a prefix
// with a brace or a negative retention.
func Resolve(prefix string, fenceRetention time.Duration, classicPubSub bool) (Settings, error) {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if err := ValidatePrefix(prefix); err != nil {
		return Settings{}, &locker.ArgumentError{Arg: "Options.Prefix", Reason: err.Error()}
	}
	switch {
	case fenceRetention < 0:
		return Settings{}, &locker.ArgumentError{Arg: "Options.FenceRetention", Reason: fmt.Sprintf("negative (%v)", fenceRetention)}
	case fenceRetention == 0:
		fenceRetention = DefaultFenceRetention
	}
	s := Settings{Layout: Layout{Prefix: prefix}, FenceRetention: fenceRetention, Publish: Sharded}
	if classicPubSub {
		s.Publish = Classic
	}
	return s, nil
}
