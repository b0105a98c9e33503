//go:build !unix

package main

import (
	"os"
	"os/exec"
)

func startGroup(*exec.Cmd) {}

func signalGroup(p *os.Process, sig os.Signal) { _ = p.Signal(sig) }

func exitStatus(ps *os.ProcessState) int { return ps.ExitCode() }

func signalStatus(os.Signal) int { return exitSignal + 15 }
