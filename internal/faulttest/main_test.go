//go:build linux

package faulttest

import (
	"flag"
	"os"
	"testing"

	"go.uber.org/goleak"
)

var soakFlag = flag.Bool("faulttest.soak", false, "run the long soak: more trials and longer workloads (also DISGO_FAULTTEST_SOAK=1)")

// soak reports whether the long soak was asked for.
func soak() bool { return *soakFlag || os.Getenv("DISGO_FAULTTEST_SOAK") == "1" }

// TestMain runs the worker when the binary was started as one (see
// runWorker), and the tests, with a check for leaked goroutines of the
// coordinator, otherwise.
func TestMain(m *testing.M) {
	if cfg, ok := os.LookupEnv(workerEnv); ok {
		os.Exit(runWorker(cfg))
	}
	goleak.VerifyTestMain(m)
}
