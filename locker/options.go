package locker

import (
	"fmt"
	"github.com/disgolock/disgo/internal/token"
	"github.com/disgolock/disgo/locker/driver"
	"log/slog"
	"reflect"
	"strings"
	"time"

	"github.com/disgolock/disgo/fairqueue"
)

// Mode chooses how waiters are ordered.
type Mode int

const (
	// Fair (the default) grants the lock in the order the store registered
	// the waiters. No waiter starves; a release wakes only the head.
	Fair Mode = iota
	// Barging lets any attempt take a free lock, whoever waited longest.
	// It needs no Queue and gives the most throughput under contention,
	// at the price of possible starvation.
	Barging
)

func (m Mode) String() string {
	switch m {
	case Fair:
		return "fair"
	case Barging:
		return "barging"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Limits on input, checked before anything touches the store.
const (
	// MaxNameLen is the longest lock name, namespace included, in bytes.
	MaxNameLen = 1024
	// MaxOwnerLen is the longest owner token in bytes.
	MaxOwnerLen = 256
	// MinLease is the shortest lease.
	MinLease = time.Millisecond
	// MaxLease is the longest lease, and the longest duration of every
	// [Options] field. It keeps every deadline and every millisecond count
	// the store sees far inside the int64 range.
	MaxLease = 365 * 24 * time.Hour
	// MaxWait is the longest finite wait of Lock and LockWithRenewal;
	// longer waits are rejected, except WaitForever.
	MaxWait = 365 * 24 * time.Hour
	// WaitForever makes Lock and LockWithRenewal wait until ctx is done.
	WaitForever time.Duration = 1<<63 - 1
)

// Defaults of [Options]; a zero field means its default.
const (
	DefaultRenewLease       = 30 * time.Second
	DefaultFallbackInterval = time.Second
	DefaultRequestTimeout   = 5 * time.Second
)

// Options configures a [Locker]. The zero value of every field means its
// documented default; invalid values make [New] fail with an
// [*ArgumentError].
type Options[T any] struct {
	// Namespace is prefixed to every lock name. The lock name of a key is
	// Namespace + ":" + key, with '%' and ':' in the namespace written as
	// "%25" and "%3A"; without a namespace it is the key itself, with '%'
	// and ':' in the key written so. So every (namespace, key) pair has a
	// name of its own: namespace "a" with key "b:c" is not namespace "a:b"
	// with key "c", nor key "a:b:c" without a namespace. It must not
	// contain '{' or '}' (cluster hash tags) and is at most MaxNameLen/2
	// bytes. Default: none.
	Namespace string

	// Key maps a key to its lock name. Default: the key itself when T is a
	// string type, its String method when T is a fmt.Stringer; for any
	// other T, Key is required.
	Key func(T) string

	// Mode is Fair (default) or Barging. Fair needs a Backend that
	// implements driver.Queue.
	Mode Mode

	// Notifier overrides the wake-up source. Default: the Backend, if it
	// implements Notifier; without one, waiters re-check every
	// FallbackInterval.
	Notifier driver.Notifier

	// Renewer overrides the renewal scheduler. Default: renewer.New on the
	// Backend, with its defaults (renew at a third of the lease).
	Renewer driver.Renewer

	// RenewLease is the lease of auto-renewed locks: how long the lock
	// survives its holder's process. Default: DefaultRenewLease (30s).
	RenewLease time.Duration

	// WaiterTTL is, in fair mode, how long the store keeps a waiter's place
	// after its last heartbeat, bounding how long a dead waiter stalls the
	// queue (see fairqueue.Policy). Default: fairqueue.DefaultWaiterTTL (3s).
	WaiterTTL time.Duration

	// FallbackInterval bounds how long a waiter sleeps without a wake-up
	// before it re-checks the lock. It is shortened to the holder's
	// remaining lease and, in fair mode, to the waiter heartbeat.
	// Default: DefaultFallbackInterval (1s).
	FallbackInterval time.Duration

	// RequestTimeout bounds each store call, so that an unreachable store
	// fails an operation instead of hanging it. Default: 5s.
	RequestTimeout time.Duration

	// Observer, if set, is told of every operation and background event
	// (see [Observer]; package github.com/disgolock/disgo/otel makes one
	// for OpenTelemetry). Default: none, which costs nothing.
	Observer Observer

	// Logger, if set, receives the background events nobody is waiting
	// for: renewal failures and losses (Warn; Debug for the losses Close
	// causes), and give-up clean-ups left to background retries (Warn)
	// and how they ended (Info). Default: nil, which logs nothing.
	Logger *slog.Logger
}

type config[T any] struct {
	Options[T]
	key    func(T) string
	ns     string // Namespace, escaped (see Options.Namespace)
	policy fairqueue.Policy
}

// escapeName writes '%' as "%25" and ':' as "%3A", so that the result has
// no ':' and can be told apart from other escaped strings.
func escapeName(s string) string {
	if !strings.ContainsAny(s, "%:") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '%':
			b.WriteString("%25")
		case ':':
			b.WriteString("%3A")
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func (o Options[T]) resolve() (config[T], error) {
	c := config[T]{Options: o}
	if strings.ContainsAny(o.Namespace, "{}") {
		return c, argError("Options.Namespace", "must not contain '{' or '}' (they are reserved for cluster hash tags)")
	}
	if len(o.Namespace) > MaxNameLen/2 {
		return c, argError("Options.Namespace", "longer than %d bytes", MaxNameLen/2)
	}
	if o.Mode != Fair && o.Mode != Barging {
		return c, argError("Options.Mode", "unknown mode %d", int(o.Mode))
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
		min  time.Duration
	}{
		{"Options.RenewLease", &c.RenewLease, DefaultRenewLease, 10 * time.Millisecond},
		{"Options.WaiterTTL", &c.WaiterTTL, fairqueue.DefaultWaiterTTL, fairqueue.MinWaiterTTL},
		{"Options.FallbackInterval", &c.FallbackInterval, DefaultFallbackInterval, time.Millisecond},
		{"Options.RequestTimeout", &c.RequestTimeout, DefaultRequestTimeout, time.Millisecond},
	} {
		switch {
		case *d.v == 0:
			*d.v = d.def
		case *d.v < d.min:
			return c, argError(d.name, "%v is below the minimum %v", *d.v, d.min)
		case *d.v > MaxLease:
			return c, argError(d.name, "%v is above the maximum %v (MaxLease)", *d.v, MaxLease)
		}
	}
	c.policy = fairqueue.Policy{WaiterTTL: c.WaiterTTL}
	c.ns = escapeName(o.Namespace)
	c.key = o.Key
	if c.key == nil {
		var zero T
		switch any(zero).(type) {
		case fmt.Stringer:
			c.key = func(k T) string { return any(k).(fmt.Stringer).String() }
		default:
			if reflect.TypeFor[T]().Kind() == reflect.String {
				c.key = func(k T) string { return reflect.ValueOf(k).String() }
			} else {
				return c, argError("Options.Key", "required for key type %v", reflect.TypeFor[T]())
			}
		}
	}
	return c, nil
}

// CallOption adjusts one acquiring call.
type CallOption func(*callOptions)

type callOptions struct {
	owner   string
	set     bool // WithOwner was given
	permits int  // WithPermits
	psSet   bool // WithPermits was given
}

// WithPermits makes an acquiring call of a semaphore (see [NewSemaphore])
// take n permits, from 1 to the semaphore's limit; the default is 1. Any
// other Locker rejects it with an [*ArgumentError].
func WithPermits(n int) CallOption {
	return func(o *callOptions) { o.permits, o.psSet = n, true }
}

// WithOwner makes the call acquire as owner, so that it re-enters a lock
// this owner already holds (reentrancy). Without it, every acquiring call
// is a new owner. Share an owner token deliberately: every holder of the
// token is the same owner to the store. See [Lock.Owner] and [NewOwner].
func WithOwner(owner string) CallOption {
	return func(o *callOptions) { o.owner, o.set = owner, true }
}

// NewOwner returns a fresh owner token, unique across processes and
// hosts: 22 bytes of URL-safe base64, from the generator of the calls'
// tickets (a random per-process prefix and a counter).
func NewOwner() string { return token.New() }
