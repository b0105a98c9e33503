package conformance_test

import (
	"context"
	"testing"

	"github.com/disgolock/disgo/backend/memory"
	"github.com/disgolock/disgo/conformance"
)

// testConformance is the test a backend package writes, named
// TestConformance there; this one runs the suite on the in-memory store.
func testConformance(t *testing.T) {
	store := memory.New() // one store, shared by every client
	conformance.Run(t, conformance.Harness{
		NewClient: func(testing.TB) conformance.Client {
			c := store.Client() // an independent "process" of the store
			return conformance.Client{Backend: c, Kill: c.Kill, Stall: c.Stall, Subscriptions: c.ActiveSubscriptions}
		},
		Keys: func(_ context.Context, substr string) ([]string, error) { return store.Keys(substr), nil },
		Wipe: func(_ context.Context, name string) error {
			store.Wipe(name)
			return nil
		},
	})
}

// Run the suite on a backend from a test of its package, then:
//
//	go test -race -run Conformance ./mybackend/
//	go test -race -run 'Conformance/Fairness/' ./mybackend/
func Example() {
	_ = testConformance
}
