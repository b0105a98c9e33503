package conformance

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/locker"
	"github.com/disgolock/disgo/locker/driver"
)

// badCall is one call with bad input and the error it must fail with.
type badCall struct {
	what string
	want error // locker.ErrInvalidArgument, or a context error
	call func() (*locker.Lock[string], error)
}

// badCalls returns the calls with bad input on l, by subtest name.
func (e *env) badCalls(l *locker.Locker[string]) map[string][]badCall {
	inv := locker.ErrInvalidArgument
	try := func(ctx context.Context, key string, lease time.Duration, want error, opts ...locker.CallOption) badCall {
		return badCall{fmt.Sprintf("TryLock(key of %d bytes, lease %v)", len(key), lease), want,
			func() (*locker.Lock[string], error) { return l.TryLock(ctx, key, lease, opts...) }}
	}
	lock := func(ctx context.Context, key string, wait, lease time.Duration, want error, opts ...locker.CallOption) badCall {
		return badCall{fmt.Sprintf("Lock(key of %d bytes, wait %v, lease %v)", len(key), wait, lease), want,
			func() (*locker.Lock[string], error) { return l.Lock(ctx, key, wait, lease, opts...) }}
	}
	renewed := func(ctx context.Context, key string, wait time.Duration, want error, opts ...locker.CallOption) badCall {
		return badCall{fmt.Sprintf("LockWithRenewal(key of %d bytes, wait %v)", len(key), wait), want,
			func() (*locker.Lock[string], error) { return l.LockWithRenewal(ctx, key, wait, opts...) }}
	}
	all := func(ctx context.Context, key string, want error, opts ...locker.CallOption) []badCall {
		return []badCall{
			try(ctx, key, longLease, want, opts...),
			lock(ctx, key, time.Second, longLease, want, opts...),
			renewed(ctx, key, time.Second, want, opts...),
		}
	}
	cancelled, cancel := context.WithCancel(e.ctx)
	cancel()
	calls := map[string][]badCall{
		"EmptyName":        all(e.ctx, "", inv),
		"OversizedName":    all(e.ctx, strings.Repeat("n", locker.MaxNameLen), inv),
		"NegativeWait":     {lock(e.ctx, "k", -time.Nanosecond, longLease, inv), renewed(e.ctx, "k", -time.Second, inv)},
		"CancelledContext": all(cancelled, "k", context.Canceled),
		"Owner": append(all(e.ctx, "k", inv, locker.WithOwner("")),
			all(e.ctx, "k", inv, locker.WithOwner(strings.Repeat("o", locker.MaxOwnerLen+1)))...),
	}
	for _, lease := range []time.Duration{0, -time.Second, locker.MinLease - time.Nanosecond, locker.MinLease / 2} {
		calls["Lease"] = append(calls["Lease"], try(e.ctx, "k", lease, inv), lock(e.ctx, "k", time.Second, lease, inv))
	}
	return calls
}

// rejects requires every call to fail with its error.
func (e *env) rejects(calls []badCall) {
	e.t.Helper()
	require.NotEmpty(e.t, calls)
	for _, c := range calls {
		r := within(e.t, patience, c.what, func() acq {
			h, err := c.call()
			return acq{lock: h, err: err}
		})
		if r.err == nil {
			_ = r.lock.Release(e.ctx)
			e.t.Fatalf("%s succeeded; want an error matching %v", c.what, c.want)
		}
		if errors.Is(c.want, locker.ErrInvalidArgument) {
			requireErr(e.t, r.err, c.want)
			requireArgumentError(e.t, r.err)
		} else {
			requireCtxErr(e.t, r.err, c.want)
		}
	}
}

func requireArgumentError(t testing.TB, err error) {
	t.Helper()
	require.ErrorIs(t, err, locker.ErrInvalidArgument)
	var ae *locker.ArgumentError
	require.ErrorAs(t, err, &ae, "bad input is reported as a *locker.ArgumentError")
}

// badInput returns a subtest that rejects the bad calls of one kind, then
// runs extra checks.
func badInput(kind string, extra func(e *env, l *locker.Locker[string])) func(e *env) {
	return func(e *env) {
		l := e.locker(e.client(), locker.Options[string]{})
		e.rejects(e.badCalls(l)[kind])
		if extra != nil {
			extra(e, l)
		}
	}
}

var (
	badEmptyName = badInput("EmptyName", func(e *env, l *locker.Locker[string]) {
		_, err := l.Name("")
		requireArgumentError(e.t, err)
	})

	badOversizedName = badInput("OversizedName", func(e *env, l *locker.Locker[string]) {
		prefix := len(e.name(l, "x")) - 1
		key := strings.Repeat("n", locker.MaxNameLen-prefix)
		require.Len(e.t, e.name(l, key), locker.MaxNameLen)
		e.release(e.tryLock(l, key, longLease)) // the limit itself is accepted
		_, err := l.Name(key + "n")
		requireArgumentError(e.t, err)
	})

	badLease = badInput("Lease", func(e *env, l *locker.Locker[string]) {
		// The minimum is accepted. Over a round trip longer than it, the
		// lease ends before the answer is seen, and TryLock fails with
		// ErrNotObtained rather than return a handle that protects nothing.
		r := within(e.t, patience, `TryLock("min-lease")`, func() acq {
			h, err := l.TryLock(e.ctx, "min-lease", locker.MinLease)
			return acq{lock: h, err: err}
		})
		if r.err != nil {
			requireErr(e.t, r.err, locker.ErrNotObtained)
			return
		}
		if err := e.releaseErr(r.lock); err != nil {
			requireErr(e.t, err, locker.ErrNotHeld) // it may well have expired
		}
	})

	badNegativeWait = badInput("NegativeWait", nil)

	badCancelledContext = badInput("CancelledContext", nil)

	badOwner = badInput("Owner", func(e *env, l *locker.Locker[string]) {
		owner := strings.Repeat("o", locker.MaxOwnerLen) // the limit is accepted
		h := e.tryLock(l, "max-owner", longLease, locker.WithOwner(owner))
		require.Equal(e.t, owner, h.Owner())
		e.release(h)
	})
)

// badNilBackend: New rejects a nil Backend.
func badNilBackend(e *env) {
	l, err := locker.New[string](nil, locker.Options[string]{Mode: locker.Barging})
	require.Nil(e.t, l)
	requireArgumentError(e.t, err)
}

// badOptions: New rejects invalid options.
func badOptions(e *env) {
	b := e.client().Backend
	for what, o := range map[string]locker.Options[string]{
		"a Namespace with a brace":       {Namespace: "a{b}"},
		"an oversized Namespace":         {Namespace: strings.Repeat("n", locker.MaxNameLen)},
		"an unknown Mode":                {Mode: locker.Mode(7)},
		"a RenewLease of 1ms":            {RenewLease: time.Millisecond},
		"a negative RenewLease":          {RenewLease: -time.Second},
		"a WaiterTTL of 1ms":             {WaiterTTL: time.Millisecond},
		"a negative FallbackInterval":    {FallbackInterval: -time.Second},
		"a sub-ms FallbackInterval":      {FallbackInterval: time.Microsecond},
		"a negative RequestTimeout":      {RequestTimeout: -time.Second},
		"a RequestTimeout of a microsec": {RequestTimeout: time.Microsecond},
	} {
		if o.Mode == locker.Fair {
			o.Mode = locker.Barging // so that a backend without Queue fails for the option alone
		}
		l, err := locker.New(b, o)
		require.Nil(e.t, l, "New with %s", what)
		require.Error(e.t, err, "New with %s", what)
		requireArgumentError(e.t, err)
	}
	type id struct{ _ int }
	l, err := locker.New(b, locker.Options[id]{Mode: locker.Barging})
	require.Nil(e.t, l, "New for a struct key type without Options.Key")
	requireArgumentError(e.t, err)
}

// badFairWithoutQueue: fair mode on a backend without Queue is
// ErrUnsupported; barging mode works on it.
func badFairWithoutQueue(e *env) {
	c := e.client()
	bare := struct{ driver.Backend }{c.Backend}
	l, err := locker.New[string](bare, locker.Options[string]{Namespace: e.ns, Mode: locker.Fair})
	require.Nil(e.t, l)
	require.ErrorIs(e.t, err, locker.ErrUnsupported)
	e.mode = locker.Barging
	l = e.locker(Client{Backend: bare}, locker.Options[string]{})
	e.release(e.tryLock(l, "bare", longLease))
}

// badNothingWritten: no call with bad input writes to the store.
func badNothingWritten(e *env) {
	e.needKeys()
	l := e.locker(e.client(), locker.Options[string]{})
	for _, calls := range e.badCalls(l) {
		e.rejects(calls)
	}
	keys := e.keys()
	require.Empty(e.t, keys, "calls with bad input wrote to the store")
}

// keys lists the keys of the env's namespace.
func (e *env) keys() []string {
	e.t.Helper()
	type res struct {
		keys []string
		err  error
	}
	r := within(e.t, patience, "Harness.Keys", func() res {
		k, err := e.h.Keys(e.ctx, e.ns)
		return res{k, err}
	})
	require.NoError(e.t, r.err, "Harness.Keys")
	return r.keys
}
