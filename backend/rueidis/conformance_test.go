package rueidisbackend_test

import (
	"context"
	"strings"
	"testing"

	"github.com/redis/rueidis"

	rueidisbackend "github.com/disgolock/disgo/backend/rueidis"
	"github.com/disgolock/disgo/conformance"
	"github.com/disgolock/disgo/internal/rediscore"
	"github.com/disgolock/disgo/internal/redistest"
)

// TestConformance runs the conformance suite on one redis-server. Every
// client is a rueidis.Client of its own with a Store on it. (TestCluster
// runs it on a Redis Cluster.)
func TestConformance(t *testing.T) {
	runConformance(t, redistest.Start(t).Addr)
}

// connect returns a rueidis client of the servers at addrs (a cluster
// client when they are cluster nodes), for the caller to close.
func connect(t testing.TB, addrs ...string) rueidis.Client {
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: addrs})
	if err != nil {
		t.Fatalf("rueidis.NewClient: %v", err)
	}
	return c
}

// runConformance runs the suite with a Store on a new client of addrs for
// every conformance client.
func runConformance(t *testing.T, addrs ...string) {
	admin := connect(t, addrs...)
	t.Cleanup(admin.Close)
	layout := rediscore.Layout{Prefix: rediscore.DefaultPrefix}

	conformance.Run(t, conformance.Harness{
		NewClient: func(t testing.TB) conformance.Client {
			c := connect(t, addrs...)
			s, err := rueidisbackend.New(c, rueidisbackend.Options{})
			if err != nil {
				t.Fatalf("rueidisbackend.New: %v", err)
			}
			// The client first, so that every later call fails: closing the
			// Store wakes its waiters, whose next call must not get through.
			kill := func() {
				c.Close()
				_ = s.Close()
			}
			t.Cleanup(kill)
			return conformance.Client{Backend: s, Kill: kill}
		},
		Keys: func(ctx context.Context, substr string) ([]string, error) {
			tag := rediscore.Tag(substr) // the name as keys spell it, inside braces
			all, err := scanKeys(ctx, admin)
			var keys []string
			for _, k := range all {
				if strings.Contains(k, tag[1:len(tag)-1]) && !strings.HasSuffix(k, ":fence") {
					keys = append(keys, k)
				}
			}
			return keys, err
		},
		Wipe: func(ctx context.Context, name string) error {
			// One command: the keys share a slot.
			return admin.Do(ctx, admin.B().Del().Key(layout.Keys(name)...).Build()).Error()
		},
	})
}

// scanKeys lists the keys of every node c knows (the server of a
// standalone client).
func scanKeys(ctx context.Context, c rueidis.Client) ([]string, error) {
	var keys []string
	for _, node := range c.Nodes() {
		for cursor := uint64(0); ; {
			e, err := node.Do(ctx, node.B().Scan().Cursor(cursor).Count(1000).Build()).AsScanEntry()
			if err != nil {
				return keys, err
			}
			keys = append(keys, e.Elements...)
			if cursor = e.Cursor; cursor == 0 {
				break
			}
		}
	}
	return keys, nil
}
