// Package acltest runs the conformance suite, on both Redis adapters, as a
// Redis user that has exactly the documented least-privilege ACL rules
// (rediscore.ACLRules, as the README gives them): if any command, key or
// channel the adapters need were missing from the rules, a subtest would
// fail with NOPERM.
package acltest_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/disgolock/disgo/backend/goredis"
	rueidisbackend "github.com/disgolock/disgo/backend/rueidis"
	"github.com/disgolock/disgo/conformance"
	"github.com/disgolock/disgo/internal/killable"
	"github.com/disgolock/disgo/internal/rediscore"
	"github.com/disgolock/disgo/internal/redistest"
	"github.com/disgolock/disgo/internal/tcpproxy"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	user     = "locker"
	password = "s3cret-locker"
)

// documentedRules are the rules the README tells an operator to give the
// user on this server: rediscore.ACLRules, plus +client|setinfo from Redis
// 7.2 on (the clients' handshake).
func documentedRules(t *testing.T, admin *redis.Client) []string {
	t.Helper()
	rules := strings.Fields(rediscore.ACLRules(rediscore.DefaultPrefix))
	info, err := admin.Info(context.Background(), "server").Result()
	require.NoError(t, err)
	if atLeast72(info) {
		rules = append(rules, "+client|setinfo")
	}
	return rules
}

func atLeast72(info string) bool {
	for _, line := range strings.Split(info, "\n") {
		v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:")
		if !ok {
			continue
		}
		parts := strings.SplitN(v, ".", 3)
		if len(parts) < 2 {
			return false
		}
		major, _ := strconv.Atoi(parts[0])
		minor, _ := strconv.Atoi(parts[1])
		return major > 7 || (major == 7 && minor >= 2)
	}
	return false
}

// server starts a redis-server with the least-privileged user and returns
// it with an admin client (the default user, for the harness's key
// listing and wiping only).
func server(t *testing.T) (*redistest.Server, *redis.Client) {
	t.Helper()
	srv := redistest.Start(t)
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = admin.Close() })
	args := []any{"ACL", "SETUSER", user, "reset", "on", ">" + password}
	for _, r := range documentedRules(t, admin) {
		args = append(args, r)
	}
	require.NoError(t, admin.Do(context.Background(), args...).Err())
	// The user really is that narrow: a key outside the prefix is refused.
	probe := redis.NewClient(&redis.Options{Addr: srv.Addr, Username: user, Password: password})
	defer probe.Close()
	err := probe.Set(context.Background(), "outside-the-prefix", "x", 0).Err()
	require.ErrorContains(t, err, "NOPERM", "the ACL user may write outside the prefix")
	return srv, admin
}

func harness(admin *redis.Client, newClient func(t testing.TB) conformance.Client) conformance.Harness {
	layout := rediscore.Layout{Prefix: rediscore.DefaultPrefix}
	return conformance.Harness{
		NewClient: newClient,
		Keys: func(ctx context.Context, substr string) ([]string, error) {
			tag := rediscore.Tag(substr)
			var out []string
			iter := admin.Scan(ctx, 0, "*"+globEscaper.Replace(tag[1:len(tag)-1])+"*", 1000).Iterator()
			for iter.Next(ctx) {
				if k := iter.Val(); !isFence(k) {
					out = append(out, k)
				}
			}
			return out, iter.Err()
		},
		Wipe: func(ctx context.Context, name string) error {
			return admin.Del(ctx, layout.Keys(name)...).Err()
		},
	}
}

// proxied returns the address of a TCP proxy of its own in front of addr,
// and the conformance Stall hook that pauses it, as a process pause would
// stall every connection of a client.
func proxied(t testing.TB, addr string) (string, func() func()) {
	p := tcpproxy.Start(t, addr)
	return p.Addr(), func() func() { return tcpproxy.Stall(p) }
}

// isFence reports whether k is the fence record of a mutex, read-write lock
// or semaphore: fence records outlive the locks on purpose.
func isFence(k string) bool {
	return strings.HasSuffix(k, ":fence") || strings.HasSuffix(k, ":rw.f") || strings.HasSuffix(k, ":sem.f")
}

// globEscaper quotes the characters SCAN MATCH treats as a pattern.
var globEscaper = strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`, `]`, `\]`)

func TestConformanceAsLeastPrivilegedUserGoRedis(t *testing.T) {
	srv, admin := server(t)
	conformance.Run(t, harness(admin, func(t testing.TB) conformance.Client {
		addr, stall := proxied(t, srv.Addr)
		c := redis.NewClient(&redis.Options{
			Addr: addr, Username: user, Password: password,
			ContextTimeoutEnabled: true, DialTimeout: time.Second,
			ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, // longer than any stall
		})
		s, err := goredis.New(c, goredis.Options{})
		if err != nil {
			t.Fatalf("goredis.New: %v", err)
		}
		var once sync.Once
		closeAll := func() {
			once.Do(func() {
				_ = c.Close()
				_ = s.Close()
			})
		}
		t.Cleanup(closeAll)
		return conformance.Client{Backend: s, Kill: closeAll, Stall: stall, Subscriptions: s.ActiveSubscriptions}
	}))
}

func TestConformanceAsLeastPrivilegedUserRueidis(t *testing.T) {
	srv, admin := server(t)
	conformance.Run(t, harness(admin, func(t testing.TB) conformance.Client {
		addr, stall := proxied(t, srv.Addr)
		c, err := rueidis.NewClient(rueidis.ClientOption{
			InitAddress: []string{addr}, Username: user, Password: password,
			ConnWriteTimeout: 10 * time.Second, // longer than any stall
		})
		if err != nil {
			t.Fatalf("rueidis.NewClient: %v", err)
		}
		s, err := rueidisbackend.New(c, rueidisbackend.Options{})
		if err != nil {
			c.Close()
			t.Fatalf("rueidisbackend.New: %v", err)
		}
		var once sync.Once
		k := killable.New(s)
		closeAll := func() {
			once.Do(func() {
				c.Close()
				_ = s.Close()
			})
		}
		kill := func() {
			k.Kill() // a closed rueidis client may still reconnect: every later call fails first
			closeAll()
		}
		t.Cleanup(closeAll)
		return conformance.Client{Backend: k, Kill: kill, Stall: stall, Subscriptions: s.ActiveSubscriptions}
	}))
}
