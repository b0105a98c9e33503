//go:build !linux

package faulttest

import "testing"

// TestFaults needs Linux: SIGSTOP/SIGCONT of worker processes,
// Pdeathsig so that no worker outlives the test, and CLOCK_MONOTONIC
// shared by all processes.
func TestFaults(t *testing.T) {
	t.Skip("the process-level fault suite runs on Linux only (SIGSTOP, Pdeathsig, a CLOCK_MONOTONIC shared by processes)")
}
