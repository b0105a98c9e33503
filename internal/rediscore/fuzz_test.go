package rediscore

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/disgolock/disgo/locker"
	"github.com/disgolock/disgo/locker/driver"
)

// FuzzParseAcquire: any reply decodes to a result or an error, never to a
// held lock without a positive fence and count, nor to a fence below zero.
func FuzzParseAcquire(f *testing.F) {
	f.Add(int64(1), int64(42), int64(2), int64(0), 3)
	f.Add(int64(0), int64(1500), int64(3), int64(41), 4)
	f.Add(int64(0), int64(-2), int64(-1), int64(0), 4)
	f.Add(int64(-1), int64(0), int64(0), int64(0), 3)
	f.Add(int64(1), int64(-9223372036854775808), int64(1), int64(0), 3)
	f.Add(int64(0), int64(9223372036854775807), int64(0), int64(-1), 4)
	f.Fuzz(func(t *testing.T, a, b, c, d int64, n int) {
		r := []int64{a, b, c, d}[:max(0, min(n, 4))]
		res, err := ParseAcquire(r)
		if err != nil {
			if res != (driver.AcquireResult{}) {
				t.Fatalf("%v: an error with a result %+v", r, res)
			}
			return
		}
		if res.Acquired {
			if res.Fence <= 0 || res.Count <= 0 || res.Position != -1 {
				t.Fatalf("%v: acquired with %+v", r, res)
			}
			return
		}
		if res.Fence < 0 || res.Position < -1 {
			t.Fatalf("%v: not acquired with %+v", r, res)
		}
		if res.TTL > locker.MaxLease || (res.TTL < 0 && res.TTL != -1) {
			t.Fatalf("%v: TTL %v", r, res.TTL)
		}
	})
}

// FuzzParseWake: the ticket is the payload up to the first space, and a
// fence is reported only when it is a positive integer.
func FuzzParseWake(f *testing.F) {
	for _, s := range []string{"", "*", "tk", "tk 42", "tk -1", "tk 0", "tk x", "tk 9223372036854775807", "tk 9223372036854775808", " 5", "a b c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, payload string) {
		ticket, fence := ParseWake(payload)
		if !strings.HasPrefix(payload, ticket) || strings.Contains(ticket, " ") {
			t.Fatalf("%q: ticket %q", payload, ticket)
		}
		if fence < 0 {
			t.Fatalf("%q: negative fence %d", payload, fence)
		}
		if fence > 0 && payload != ticket+" "+strconv.FormatInt(fence, 10) &&
			!strings.HasPrefix(payload[len(ticket)+1:], "+") && !strings.HasPrefix(payload[len(ticket)+1:], "0") {
			t.Fatalf("%q: fence %d is not what the payload says", payload, fence)
		}
	})
}

// FuzzParseRecord: a record that parses formats back to itself, with a
// positive count and fence; anything else is an error.
func FuzzParseRecord(f *testing.F) {
	for _, s := range []string{
		"1 1700000000000000 tk owner", "3 9223372036854775807 t o w n e r", "1 9223372036854775808 t o",
		"0 5 t o", "01 5 t o", "1 05 t o", "1 5 t", "1 5  o", "", "x y z w", "1 -5 t o", "1 5 t\to o", "2 7 tk ",
		"2w 7 tk o", "w 7 tk o", "2ww 7 tk o", "0w 7 t o",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		r, err := ParseRecord(v)
		if err != nil {
			return
		}
		if r.Count <= 0 || r.Fence <= 0 || r.Ticket == "" {
			t.Fatalf("%q: parsed as %+v", v, r)
		}
		if back := r.String(); back != v {
			t.Fatalf("%q: parsed as %+v, which formats as %q", v, r, r.String())
		}
	})
}

// FuzzKeys: every key of a (non-empty, as the facade ensures) name shares
// one hash tag, the channel maps back to the name, and distinct names have
// distinct keys.
func FuzzKeys(f *testing.F) {
	for _, s := range []string{"a", "{", "}", "{}", "%7B", "%", "a:b", "ключ", "x}y{z"} {
		f.Add(s, "b")
	}
	l := Layout{Prefix: DefaultPrefix}
	f.Fuzz(func(t *testing.T, a, b string) {
		if a == "" {
			return
		}
		ka := l.Keys(a)
		tag := hashTag(ka[0])
		for _, k := range ka {
			if hashTag(k) != tag {
				t.Fatalf("name %q: key %q hashes apart from %q", a, k, ka[0])
			}
		}
		if got, ok := l.NameOfChannel(l.Channel(a)); !ok || got != a {
			t.Fatalf("name %q: channel maps back to %q, %v", a, got, ok)
		}
		if a != b && l.Keys(b)[0] == ka[0] {
			t.Fatalf("names %q and %q share the key %q", a, b, ka[0])
		}
	})
}

// FuzzMs: no duration overflows, and no positive one becomes zero.
func FuzzMs(f *testing.F) {
	for _, d := range []int64{0, 1, 999999, 1000000, 1000001, -1, 1<<63 - 1, -1 << 63} {
		f.Add(d)
	}
	f.Fuzz(func(t *testing.T, d int64) {
		ms, err := strconv.ParseInt(Ms(time.Duration(d)), 10, 64)
		if err != nil || ms < 0 {
			t.Fatalf("Ms(%d) = %q", d, Ms(time.Duration(d)))
		}
		if d > 0 && (ms == 0 || time.Duration(ms) < time.Duration(d)/time.Millisecond) {
			t.Fatalf("Ms(%d) = %d", d, ms)
		}
	})
}
