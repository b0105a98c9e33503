package memory_test

import (
	"context"
	"testing"

	"github.com/disgolock/disgo/backend/memory"
	"github.com/disgolock/disgo/conformance"
)

// TestConformance runs the conformance suite on one shared in-memory store.
// Each client is an independent view of it that can be killed and stalled.
func TestConformance(t *testing.T) {
	s := memory.New()
	conformance.Run(t, conformance.Harness{
		NewClient: func(testing.TB) conformance.Client {
			c := s.Client() // holds no goroutines or connections: nothing to clean up
			return conformance.Client{Backend: c, Kill: c.Kill, Stall: c.Stall, Subscriptions: c.ActiveSubscriptions}
		},
		Keys: func(_ context.Context, substr string) ([]string, error) { return s.Keys(substr), nil },
		Wipe: func(_ context.Context, name string) error {
			s.Wipe(name)
			return nil
		},
	})
}
