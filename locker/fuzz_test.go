package locker_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/disgolock/disgo/locker"
	"github.com/disgolock/disgo/locker/driver"
)

// unescape inverts the escaping of Options.Namespace: "%25" is '%' and
// "%3A" is ':'.
func unescape(s string) string {
	return strings.NewReplacer("%25", "%", "%3A", ":").Replace(s)
}

// parseName splits a lock name back into its namespace and key, as
// Options.Namespace documents the layout.
func parseName(name string) (ns, key string) {
	if i := strings.IndexByte(name, ':'); i >= 0 {
		return unescape(name[:i]), name[i+1:]
	}
	return "", unescape(name)
}

// FuzzName: the lock name of every valid (namespace, key) pair is valid,
// and determines the pair: two pairs never share a lock.
func FuzzName(f *testing.F) {
	for _, p := range [][2]string{{"a", "b:c"}, {"a:b", "c"}, {"", "a:b:c"}, {"%", "x"}, {"", "%3A"}, {"a%3A", "b"}, {"{", "x"}, {"", "{}"}} {
		f.Add(p[0], p[1])
	}
	f.Fuzz(func(t *testing.T, ns, key string) {
		l, err := locker.New(noStore{t}, locker.Options[string]{Namespace: ns, Mode: locker.Barging})
		if err != nil {
			if !errors.Is(err, locker.ErrInvalidArgument) {
				t.Fatalf("namespace %q: %v", ns, err)
			}
			if !strings.ContainsAny(ns, "{}") && len(ns) <= locker.MaxNameLen/2 {
				t.Fatalf("namespace %q refused: %v", ns, err)
			}
			return
		}
		defer l.Close()
		name, err := l.Name(key)
		if err != nil {
			if !errors.Is(err, locker.ErrInvalidArgument) {
				t.Fatalf("key %q: %v", key, err)
			}
			return
		}
		if name == "" || len(name) > locker.MaxNameLen {
			t.Fatalf("namespace %q key %q: name %q", ns, key, name)
		}
		gotNS, gotKey := parseName(name)
		if gotNS != ns || gotKey != key {
			t.Fatalf("namespace %q key %q: name %q reads back as namespace %q key %q", ns, key, name, gotNS, gotKey)
		}
	})
}

// FuzzCallInput: bad keys, leases, waits and owners are refused with an
// ArgumentError before the store is touched; good ones reach it.
func FuzzCallInput(f *testing.F) {
	f.Add("k", int64(time.Second), int64(0), "")
	f.Add("", int64(time.Second), int64(0), "")
	f.Add("k", int64(0), int64(0), "")
	f.Add("k", int64(time.Second), int64(-1), "")
	f.Add("k", int64(1<<63-1), int64(1<<63-1), "o")
	f.Add(strings.Repeat("k", 1025), int64(time.Second), int64(0), "o")
	f.Add("k", int64(time.Second), int64(0), strings.Repeat("o", 257))
	f.Fuzz(func(t *testing.T, key string, lease, wait int64, owner string) {
		b := &countingStore{}
		l, err := locker.New(b, locker.Options[string]{Mode: locker.Barging})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		var opts []locker.CallOption
		if owner != "" {
			opts = append(opts, locker.WithOwner(owner))
		}
		d, w := time.Duration(lease), time.Duration(wait)
		valid := key != "" && len(key) <= locker.MaxNameLen && d >= locker.MinLease && d <= locker.MaxLease &&
			w >= 0 && (w <= locker.MaxWait || w == locker.WaitForever) && len(owner) <= locker.MaxOwnerLen
		if strings.ContainsAny(key, "%:") {
			valid = valid && len(strings.NewReplacer("%", "%25", ":", "%3A").Replace(key)) <= locker.MaxNameLen
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // a valid call stops at the cancelled ctx, after validation
		_, err = l.Lock(ctx, key, w, d, opts...)
		if valid {
			if !errors.Is(err, context.Canceled) || errors.Is(err, locker.ErrInvalidArgument) {
				t.Fatalf("key %q lease %v wait %v owner %q: %v", key, d, w, owner, err)
			}
		} else {
			var ae *locker.ArgumentError
			if !errors.As(err, &ae) {
				t.Fatalf("key %q lease %v wait %v owner %q: want an ArgumentError, got %v", key, d, w, owner, err)
			}
		}
		if b.calls != 0 {
			t.Fatalf("the store was touched %d times", b.calls)
		}
	})
}

// noStore is a Backend that fails the test when it is used.
type noStore struct{ t *testing.T }

func (s noStore) Acquire(context.Context, driver.AcquireRequest) (driver.AcquireResult, error) {
	s.t.Fatal("the store was touched")
	return driver.AcquireResult{}, nil
}
func (s noStore) Release(context.Context, string, string, string) (bool, int, error) {
	s.t.Fatal("the store was touched")
	return false, 0, nil
}
func (s noStore) Extend(context.Context, string, string, time.Duration) (bool, error) {
	s.t.Fatal("the store was touched")
	return false, nil
}

// countingStore counts its calls.
type countingStore struct{ calls int }

func (s *countingStore) Acquire(context.Context, driver.AcquireRequest) (driver.AcquireResult, error) {
	s.calls++
	return driver.AcquireResult{}, nil
}
func (s *countingStore) Release(context.Context, string, string, string) (bool, int, error) {
	s.calls++
	return false, 0, nil
}
func (s *countingStore) Extend(context.Context, string, string, time.Duration) (bool, error) {
	s.calls++
	return false, nil
}
