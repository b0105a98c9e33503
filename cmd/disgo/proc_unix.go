//go:build unix

package main

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

// startGroup makes the command the leader of a process group of its own,
// so that signals reach the processes it starts too.
func startGroup(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	parentDeathSignal(cmd.SysProcAttr)
}

// signalGroup sends sig to the process group of p.
func signalGroup(p *os.Process, sig os.Signal) {
	s, ok := sig.(syscall.Signal)
	if !ok {
		_ = p.Signal(sig)
		return
	}
	if err := syscall.Kill(-p.Pid, s); errors.Is(err, syscall.ESRCH) {
		_ = p.Signal(sig)
	}
}

// exitStatus is the status of an ended command, 128+N when signal N ended it.
func exitStatus(ps *os.ProcessState) int {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return exitSignal + int(ws.Signal())
	}
	return ps.ExitCode()
}

// signalStatus is the status of disgo ended by sig: 128+N.
func signalStatus(sig os.Signal) int {
	if s, ok := sig.(syscall.Signal); ok {
		return exitSignal + int(s)
	}
	return exitSignal + 15
}
