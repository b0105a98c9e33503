package fairqueue

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTicketsAreUniqueAndURLSafe(t *testing.T) {
	seen := make(map[string]bool)
	for range 1000 {
		tk := NewTicket()
		require.Len(t, tk, 22)
		require.NotContains(t, tk, "{")
		require.False(t, seen[tk], "ticket repeated")
		seen[tk] = true
	}
}

func TestTicketsAreUniqueAcrossGoroutinesAndPrintable(t *testing.T) {
	const goroutines, each = 8, 5000
	var wg sync.WaitGroup
	got := make([][]string, goroutines)
	for i := range goroutines {
		wg.Go(func() {
			for range each {
				got[i] = append(got[i], NewTicket())
			}
		})
	}
	wg.Wait()
	seen := make(map[string]bool, goroutines*each)
	for _, tks := range got {
		for _, tk := range tks {
			require.Len(t, tk, 22)
			for _, c := range []byte(tk) {
				require.True(t, strings.IndexByte(ticketAlphabet, c) >= 0, "ticket %q has %q, outside URL-safe base64", tk, c)
			}
			require.False(t, seen[tk], "ticket %q repeated", tk)
			seen[tk] = true
		}
	}
}

func TestTicketPrefixIsRandomAndRedrawnWhenTheCounterRunsOut(t *testing.T) {
	first := NewTicket()
	g := tickets.Load()
	require.NotNil(t, g)
	assert.Equal(t, string(g.prefix[:]), first[:ticketPrefixLen], "a ticket starts with the process prefix")

	g.next.Store(ticketCounterLimit - 2)
	a, b, c := NewTicket(), NewTicket(), NewTicket()
	assert.Equal(t, first[:ticketPrefixLen]+"_____-", a, "the last counter values but one")
	assert.Equal(t, first[:ticketPrefixLen]+"______", b, "the last counter value")
	require.Len(t, c, 22)
	assert.NotEqual(t, first[:ticketPrefixLen], c[:ticketPrefixLen], "a used-up prefix is replaced")
	assert.Equal(t, "AAAAAA", c[ticketPrefixLen:], "the counter starts again")
	assert.NotSame(t, g, tickets.Load())

	// Fresh prefixes are random: 96 bits never repeat in a few draws.
	prefixes := map[string]bool{c[:ticketPrefixLen]: true, first[:ticketPrefixLen]: true}
	for range 20 {
		cur := tickets.Load()
		newTicketPrefix(cur)
		p := NewTicket()[:ticketPrefixLen]
		require.False(t, prefixes[p], "prefix %q drawn twice", p)
		prefixes[p] = true
	}
}

func TestPolicyDefaultsAndBounds(t *testing.T) {
	var p Policy
	assert.Equal(t, DefaultWaiterTTL, p.TTL())
	assert.Equal(t, time.Second, p.Heartbeat())
	assert.Equal(t, 4*time.Second, p.EvictionBound())
	p.WaiterTTL = 300 * time.Millisecond
	assert.Equal(t, 100*time.Millisecond, p.Heartbeat())
	assert.Equal(t, 400*time.Millisecond, p.EvictionBound())
}

func TestRecheckNeverExceedsTheHoldersLeaseNorSpins(t *testing.T) {
	assert.Equal(t, time.Second, Recheck(-1, time.Second), "free or unknown: the limit")
	assert.Equal(t, 51*time.Millisecond, Recheck(50*time.Millisecond, time.Second), "just past the holder's lease")
	assert.Equal(t, time.Second, Recheck(time.Hour, time.Second), "the limit bounds a long lease")
	assert.Equal(t, time.Millisecond, Recheck(0, 0), "never a busy loop")
}

func TestRoomOrderEvictionAndLeave(t *testing.T) {
	var r Room
	now := time.Unix(1000, 0)
	_, ok := r.Head()
	require.False(t, ok)

	assert.Equal(t, 0, r.Join("a", now.Add(time.Second)))
	assert.Equal(t, 1, r.Join("b", now.Add(2*time.Second)))
	assert.Equal(t, 2, r.Join("c", now.Add(3*time.Second)))
	// A heartbeat keeps the place.
	assert.Equal(t, 0, r.Join("a", now.Add(5*time.Second)))
	head, _ := r.Head()
	assert.Equal(t, "a", head)

	// b lapses; a and c stay in order.
	assert.Equal(t, 1, r.Evict(now.Add(2*time.Second)))
	assert.Equal(t, 2, r.Len())
	assert.Equal(t, -1, r.Position("b"))
	assert.Equal(t, 1, r.Position("c"))

	assert.True(t, r.Leave("a"))
	assert.False(t, r.Leave("a"))
	head, _ = r.Head()
	assert.Equal(t, "c", head)

	// A ticket that left or was evicted joins again at the tail.
	assert.Equal(t, 1, r.Join("b", now.Add(10*time.Second)))
	assert.Equal(t, 2, r.Evict(now.Add(time.Hour)))
	assert.Equal(t, 0, r.Len())
}
