package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStartClusterFormsAClusterAndCleanupStopsIt(t *testing.T) {
	var addrs []string
	t.Run("owner", func(t *testing.T) {
		c := StartCluster(t, 3)
		addrs = c.Addrs
		require.Len(t, addrs, 3)
		ctx := context.Background()
		dirs := map[string]bool{}
		for _, addr := range addrs {
			host, port, err := net.SplitHostPort(addr)
			require.NoError(t, err)
			assert.Equal(t, "127.0.0.1", host)
			assert.NotEqual(t, strconv.Itoa(defaultPort), port)

			info, err := command(addr, "CLUSTER", "INFO")
			require.NoError(t, err)
			assert.Contains(t, info, "cluster_state:ok\r\n")
			assert.Contains(t, info, "cluster_known_nodes:3\r\n")
			assert.Contains(t, info, "cluster_size:3\r\n", "every node is a master serving slots")

			n := client(t, &Server{Addr: addr})
			cfg := n.ConfigGet(ctx, "*").Val()
			assert.Equal(t, "", cfg["save"])
			assert.Equal(t, "no", cfg["appendonly"])
			assert.Equal(t, "yes", cfg["cluster-enabled"])
			assert.Equal(t, nodeTimeout, cfg["cluster-node-timeout"])
			assert.Equal(t, cfg["dir"], filepath.Dir(cfg["cluster-config-file"]), "the cluster config file is in the node's folder")
			assert.FileExists(t, cfg["cluster-config-file"])
			dirs[cfg["dir"]] = true
		}
		assert.Len(t, dirs, 3, "every node has a folder of its own")

		// Keys of a cluster client land on every master.
		cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, MaxRedirects: -1})
		defer cc.Close()
		for i := range 100 {
			require.NoError(t, cc.Set(ctx, fmt.Sprint("k", i), i, 0).Err())
		}
		total := int64(0)
		for _, addr := range addrs {
			n := client(t, &Server{Addr: addr}).DBSize(ctx).Val()
			assert.Positive(t, n, "no key on %s", addr)
			total += n
		}
		assert.Equal(t, int64(100), total)
	})
	for _, addr := range addrs {
		assert.Error(t, ping(addr), "node %s outlived its test", addr)
	}
}

func TestStartClusterNeedsThreeMasters(t *testing.T) {
	msg := fatalMessage(t, func(tb testing.TB) { StartCluster(tb, 2) })
	assert.Contains(t, msg, "at least 3 masters")
}

func TestStartClusterWithoutRedisCliGivesAnInstallHint(t *testing.T) {
	server, err := exec.LookPath("redis-server")
	require.NoError(t, err)
	bin := t.TempDir()
	require.NoError(t, os.Symlink(server, filepath.Join(bin, "redis-server")))
	t.Setenv("PATH", bin)
	msg := fatalMessage(t, func(tb testing.TB) { StartCluster(tb, 3) })
	assert.Contains(t, msg, cliInstallHint)
}

func TestSlotMap(t *testing.T) {
	// Two views of one cluster: what the answering node alone knows (its
	// own flag, a slot it is migrating) is left out.
	a := "id1 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-8000 [8001->-id2]\n" +
		"id2 127.0.0.1:7002@17002 master - 0 0 2 connected 8001-16383\n"
	b := "id2 127.0.0.1:7002@17002,host myself,master - 0 0 2 connected 8001-16383 [8001-<-id1]\n" +
		"id1 127.0.0.1:7001@17001 master - 0 0 1 connected 0-8000\n" +
		"id3 127.0.0.1:7003@17003 slave id1 0 0 1 connected\n"
	va, err := slotMap(a)
	require.NoError(t, err)
	vb, err := slotMap(b)
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:7001 0-8000\n127.0.0.1:7002 8001-16383", va)
	assert.Equal(t, va, vb)

	_, err = slotMap("id1 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-100 200\n")
	assert.ErrorContains(t, err, "102 of 16384 slots are served")
	_, err = slotMap("id1 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 9-x\n")
	assert.ErrorContains(t, err, `bad slot range "9-x"`)
}

func TestCommandReplies(t *testing.T) {
	s := Start(t)
	reply, err := command(s.Addr, "SET", "k", "a\r\nb")
	require.NoError(t, err)
	assert.Equal(t, "OK", reply)
	reply, err = command(s.Addr, "GET", "k")
	require.NoError(t, err)
	assert.Equal(t, "a\r\nb", reply, "a bulk string is read whole")
	_, err = command(s.Addr, "NOSUCHCOMMAND")
	assert.ErrorContains(t, err, "NOSUCHCOMMAND answered ERR unknown command")
	_, err = command(s.Addr, "INCR", "n")
	assert.ErrorContains(t, err, `answered ":1"`, "integers are not expected")
}
