package rueidisbackend

import (
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/internal/redistest"
)

// pubsubConnections counts the server's pub/sub connections.
func pubsubConnections(t *testing.T, c rueidis.Client) int {
	t.Helper()
	list, err := do(t, c, func(b rueidis.Builder) rueidis.Completed { return b.ClientList().Build() }).ToString()
	require.NoError(t, err)
	n := 0
	for _, line := range strings.Split(list, "\n") {
		if strings.Contains(line, "flags=P") {
			n++
		}
	}
	return n
}

func TestSubscribeRefusedByTheServer(t *testing.T) {
	srv := redistest.Start(t)
	s, c := newStore(t, srv, Options{})
	ctx := ctxT(t)
	acl := func(rule string) {
		t.Helper()
		require.NoError(t, do(t, c, func(b rueidis.Builder) rueidis.Completed {
			return b.Arbitrary("ACL", "SETUSER", "default", rule).Build()
		}).Error())
	}
	refused := func(what string, others int) {
		t.Helper()
		_, err := s.Subscribe(ctx, "a", "t")
		assert.Error(t, err, what)
		require.Eventually(t, func() bool { return s.ActiveSubscriptions() == others },
			patience, 5*time.Millisecond, "the refused subscription was kept (%s)", what)
	}
	// As a server that does not know SSUBSCRIBE (Redis before 7) would.
	acl("-ssubscribe")
	refused("on a new connection", 0)
	acl("+ssubscribe")
	held, err := s.Subscribe(ctx, "held", "t")
	require.NoError(t, err)
	defer held.Close()
	acl("-ssubscribe")
	refused("on the open connection", 1)
	acl("+ssubscribe")

	sub, err := s.Subscribe(ctx, "a", "t")
	require.NoError(t, err)
	defer sub.Close()
	assert.Equal(t, 1, pubsubConnections(t, c), "a refusal replaced the connection")
	for _, name := range []string{"a", "held"} {
		require.NoError(t, publish(t, c, s, name, "t"))
	}
	woken(t, sub, "a message after the refusal ended")
	woken(t, held, "a message on the subscription held during the refusal")
}
