//go:build !linux

package redisproc

import "syscall"

// sysProcAttr: outside Linux there is no parent-death signal; the server is
// stopped by Server.Stop only.
func sysProcAttr() *syscall.SysProcAttr { return nil }
