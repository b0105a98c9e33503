package redisproc

import "syscall"

// sysProcAttr has the kernel kill redis-server when the benchmark dies
// without stopping it (SIGKILL, a crash).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
