// Package fairqueue is the FIFO waiting room of fair locks: the semantics
// and timing policy every driver.Queue implementation shares (heartbeats,
// eviction, [Policy]), and [Room], the reference room the in-memory backend
// uses (the Redis adapters implement the same rules in Lua).
//
// # Semantics
//
//   - Order is fixed by the store: a ticket joins at the tail when the store
//     first registers it, and keeps its place while it stays registered. No
//     client clock takes part; heartbeat deadlines are set by the store's
//     clock (Redis TIME) from a duration the waiter sends.
//   - The lock goes to the head: a free lock is taken only by the ticket at
//     the head of the queue (or by anyone when the queue is empty). A
//     release wakes the head only, not every waiter.
//   - Waiters send heartbeats: every attempt renews the ticket's deadline to
//     now+WaiterTTL, and a waiting client attempts at least every
//     [Policy.Heartbeat].
//   - A waiter that gives up (ctx cancelled, wait elapsed) leaves at once;
//     if that uncovers a new head of a free lock, the new head is woken.
//   - A waiter that dies stops its heartbeats and is evicted by the next
//     operation on the name after its deadline. One dead waiter stalls the
//     queue by at most [Policy.EvictionBound].
//   - When the last waiter leaves or is evicted, nothing of the queue stays
//     in the store.
package fairqueue
