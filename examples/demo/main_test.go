package main

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/disgolock/disgo/internal/redistest"
)

func TestDemoRunsOnTheInMemoryBackend(t *testing.T) {
	defer goleak.VerifyNone(t)
	if err := run("", 3); err != nil {
		t.Fatal(err)
	}
}

func TestDemoRunsOnRedis(t *testing.T) {
	srv := redistest.Start(t)
	if err := run(srv.Addr, 3); err != nil {
		t.Fatal(err)
	}
}
