// Package renewer keeps auto-renewed leases alive: it is the default
// driver.Renewer.
//
// One [Renewer] serves a whole Locker. It runs a single scheduler goroutine
// over a min-heap of renewal times, so a held lock costs no goroutine. The
// scheduler starts when a hold is kept and ends about [Linger] after the
// last one was dropped, or on Close; keeping and stopping a hold while it
// sleeps until a later renewal does not wake it. A hold is renewed when the
// given fraction of its lease has passed (a third by default). All holds
// due at the same moment are renewed together: in batches of one round
// trip each when the [Extender] is also a [driver.BatchExtender], otherwise by a
// small, bounded pool of concurrent Extend calls. Transient failures are
// retried until the lease deadline; the holder learns of a loss through
// driver.Hold.OnLost, with an error matching [ErrNotHeld] or [ErrDeadline],
// or the store's error matching driver.ErrRevoked after a force release
// (at once: a revoked holding is not retried).
//
// Time is read from the system's monotonic clock, on which the holders'
// deadlines are measured too.
package renewer
