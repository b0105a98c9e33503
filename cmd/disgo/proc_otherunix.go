//go:build unix && !linux

package main

import "syscall"

func parentDeathSignal(*syscall.SysProcAttr) {}
