package token

import (
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTicketsAreUniqueAndURLSafe(t *testing.T) {
	seen := make(map[string]bool)
	for range 1000 {
		tk := New()
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
				got[i] = append(got[i], New())
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
	first := New()
	g := tickets.Load()
	require.NotNil(t, g)
	assert.Equal(t, string(g.prefix[:]), first[:ticketPrefixLen], "a ticket starts with the process prefix")

	g.next.Store(ticketCounterLimit - 2)
	a, b, c := New(), New(), New()
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
		p := New()[:ticketPrefixLen]
		require.False(t, prefixes[p], "prefix %q drawn twice", p)
		prefixes[p] = true
	}
}
