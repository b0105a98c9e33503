//go:build !unix

package main

import "time"

// processCPU is not measured on this platform: the capacity table shows
// 0 client CPU.
func processCPU() time.Duration { return 0 }
