package main

import "syscall"

// parentDeathSignal makes the kernel kill the command when disgo dies
// without the chance to stop it (SIGKILL): the lock's renewal ends then.
func parentDeathSignal(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }
