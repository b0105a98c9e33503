package redisstore_test

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/internal/redisstore"
	"github.com/disgolock/disgo/internal/redistest"
)

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestLoggerTellsOfALostAndRestoredSubscription: with Options.Logger, a
// pub/sub connection killed by the server is logged as lost, then its
// channels as subscribed again, and the waiter is woken to re-check.
func TestLoggerTellsOfALostAndRestoredSubscription(t *testing.T) {
	for _, a := range adapters {
		t.Run(a.name, func(t *testing.T) {
			srv := redistest.Start(t)
			var buf syncBuffer
			log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
			s, err := a.new(t, srv.Addr, redisstore.Options{Logger: log})
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, s.Close()) })
			ctx := ctxT(t)
			sub, err := s.Subscribe(ctx, "logged", "t1")
			require.NoError(t, err)
			defer sub.Close()
			admin := redis.NewClient(&redis.Options{Addr: srv.Addr})
			defer admin.Close()
			require.NoError(t, admin.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err())
			require.Eventually(t, func() bool {
				out := buf.String()
				return strings.Contains(out, "pub/sub connection lost") && strings.Contains(out, "subscribed again")
			}, patience, 10*time.Millisecond, "log so far: %s", buf.String())
			out := buf.String()
			assert.Contains(t, out, "level=WARN")
			assert.Contains(t, out, "adapter="+a.name)
			assert.Contains(t, out, "channels=2", "the name's channel and the process's inbox")
			select {
			case <-sub.Wake(): // a lost connection may have lost a message: its waiters re-check
			case <-time.After(patience):
				t.Fatal("the waiter was not woken after its subscription was restored")
			}
			require.Eventually(t, func() bool { return s.ActiveSubscriptions() == 1 }, patience, 10*time.Millisecond)
		})
	}
}
