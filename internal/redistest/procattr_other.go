//go:build !linux

package redistest

import "syscall"

// sysProcAttr: outside Linux there is no parent-death signal; servers are
// stopped by the tests' cleanups only.
func sysProcAttr() *syscall.SysProcAttr { return nil }
