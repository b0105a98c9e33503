package redistest

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func client(t *testing.T, s *Server) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestStartServesOnLoopbackWithoutPersistence(t *testing.T) {
	s := Start(t)
	host, port, err := net.SplitHostPort(s.Addr)
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1", host)
	assert.NotEqual(t, strconv.Itoa(defaultPort), port)

	ctx := context.Background()
	c := client(t, s)
	require.NoError(t, c.Set(ctx, "k", "v", 0).Err())
	assert.Equal(t, "v", c.Get(ctx, "k").Val())
	assert.Equal(t, map[string]string{"save": ""}, c.ConfigGet(ctx, "save").Val())
	assert.Equal(t, map[string]string{"appendonly": "no"}, c.ConfigGet(ctx, "appendonly").Val())
}

func TestServersAreIndependent(t *testing.T) {
	a, b := Start(t), Start(t)
	require.NotEqual(t, a.Addr, b.Addr)
	ctx := context.Background()
	require.NoError(t, client(t, a).Set(ctx, "k", "a", 0).Err())
	assert.Equal(t, redis.Nil, client(t, b).Get(ctx, "k").Err())
}

func TestStopAndRestartKeepTheAddress(t *testing.T) {
	s := Start(t)
	addr := s.Addr
	ctx := context.Background()
	c := client(t, s)
	require.NoError(t, c.Set(ctx, "k", "v", 0).Err())

	s.Stop()
	assert.Error(t, ping(addr), "stopped server still answers")
	assert.Error(t, c.Ping(ctx).Err())
	s.Stop() // stopping twice does nothing

	s.Restart(t)
	assert.Equal(t, addr, s.Addr)
	require.NoError(t, ping(addr))
	assert.Equal(t, redis.Nil, c.Get(ctx, "k").Err(), "data survived a restart without persistence")

	s.Restart(t) // restarting a running server restarts it
	require.NoError(t, ping(addr))
}

func TestCleanupStopsTheServer(t *testing.T) {
	var addr string
	t.Run("owner", func(t *testing.T) {
		addr = Start(t).Addr
		require.NoError(t, ping(addr))
	})
	assert.Error(t, ping(addr), "server outlived its test")
}

func TestWithArgs(t *testing.T) {
	s := Start(t, WithArgs("--maxmemory-policy", "allkeys-lru"))
	got := client(t, s).ConfigGet(context.Background(), "maxmemory-policy").Val()
	assert.Equal(t, map[string]string{"maxmemory-policy": "allkeys-lru"}, got)
}

func TestFailureShowsTheServerLog(t *testing.T) {
	msg := fatalMessage(t, func(tb testing.TB) { Start(tb, WithArgs("--no-such-directive", "1")) })
	assert.Contains(t, msg, "exited before answering PING")
	assert.Contains(t, msg, "no-such-directive", "the log tail names the bad argument")
}

func TestMissingBinaryGivesAnInstallHint(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	msg := fatalMessage(t, func(tb testing.TB) { Start(tb) })
	assert.Contains(t, msg, installHint)
}

// fatalTB records the first fatal message and ends the goroutine, as
// testing.T does, without failing the real test.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (f *fatalTB) Fatal(args ...any) {
	f.msg = fmt.Sprint(args...)
	runtime.Goexit()
}

// fatalMessage runs fn with a recording TB and returns what it failed with.
func fatalMessage(t *testing.T, fn func(testing.TB)) string {
	t.Helper()
	f := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	require.NotEmpty(t, f.msg, "fn did not fail")
	return f.msg
}
