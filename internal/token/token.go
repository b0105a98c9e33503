// Package token makes the random identifiers disgo puts in the store:
// tickets, which identify one acquiring call (and a waiter's place in a
// fair queue), owner tokens, and the inboxes of processes.
package token

import (
	"crypto/rand"
	"encoding/base64"
	"sync"
	"sync/atomic"
)

// New returns a new ticket: 22 bytes of the URL-safe base64
// alphabet (A-Z, a-z, 0-9, '-', '_'), unique across processes and hosts
// (two processes draw the same prefix with negligible probability).
// Tickets identify one acquiring call; owner tokens use the same
// generator.
//
// A ticket is a random prefix of 96 bits (16 bytes), drawn from
// crypto/rand once per process, followed by a 36-bit counter (6 bytes):
// making one costs no system call and a single allocation. When the
// counter runs out, after 2^36 tickets, a new prefix is drawn. A process
// that has not seen a ticket of another process cannot guess it; one that
// has seen one can predict that process's next tickets and owner tokens,
// which, like any token visible in the store, are identifiers, not secrets.
func New() string {
	for {
		g := tickets.Load()
		if g != nil {
			if n := g.next.Add(1) - 1; n < ticketCounterLimit {
				return g.ticket(n)
			}
		}
		newTicketPrefix(g)
	}
}

const (
	ticketPrefixLen    = 16 // bytes: 96 random bits in base64
	ticketCounterLen   = 6  // bytes: 36 bits in base64
	ticketLen          = ticketPrefixLen + ticketCounterLen
	ticketCounterLimit = 1 << (6 * ticketCounterLen)
	ticketAlphabet     = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
)

// ticketGen is one random prefix and the counter of the tickets made with it.
type ticketGen struct {
	prefix [ticketPrefixLen]byte
	next   atomic.Uint64 // the next counter value; past ticketCounterLimit the prefix is used up
}

var (
	tickets   atomic.Pointer[ticketGen] // the current prefix; nil before the first ticket
	ticketsMu sync.Mutex                // serializes drawing a new prefix
)

// ticket returns the ticket of counter value n (n < ticketCounterLimit).
func (g *ticketGen) ticket(n uint64) string {
	var b [ticketLen]byte
	copy(b[:], g.prefix[:])
	for i := ticketLen - 1; i >= ticketPrefixLen; i-- {
		b[i] = ticketAlphabet[n&63]
		n >>= 6
	}
	return string(b[:])
}

// newTicketPrefix replaces the used-up generator old (nil at first) with
// one of a fresh random prefix, unless another caller did so already.
func newTicketPrefix(old *ticketGen) {
	ticketsMu.Lock()
	defer ticketsMu.Unlock()
	if tickets.Load() != old {
		return
	}
	var r [ticketPrefixLen * 6 / 8]byte
	_, _ = rand.Read(r[:]) // crypto/rand.Read never returns an error (Go 1.24+)
	g := new(ticketGen)
	base64.RawURLEncoding.Encode(g.prefix[:], r[:])
	tickets.Store(g)
}
