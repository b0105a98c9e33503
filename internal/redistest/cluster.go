package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	// clusterTimeout bounds the creation of a cluster and the wait until
	// every node reports it ok.
	clusterTimeout = 30 * time.Second
	// busOffset: a cluster node also listens on port+busOffset.
	busOffset = 10000
	// numSlots is the number of hash slots of Redis Cluster.
	numSlots = 16384
	// nodeTimeout is the cluster-node-timeout of StartCluster's nodes, in
	// milliseconds: short, so that the cluster settles quickly, and long
	// enough that a loaded machine does not make nodes declare each other
	// failed.
	nodeTimeout = "3000"
)

// cliInstallHint is part of the failure message when redis-cli is missing.
const cliInstallHint = "install it: apt-get install redis-tools (Debian/Ubuntu) or brew install redis"

// Cluster is a Redis Cluster of masters without replicas, owned by a test.
type Cluster struct {
	// Addrs are the masters' "127.0.0.1:port" addresses, one per master.
	Addrs []string

	nodes []*Server
}

// StartCluster starts masters (at least 3) cluster-enabled redis-server
// nodes, each on a free 127.0.0.1 port whose cluster bus port (port+10000)
// is free too, in a folder of its own under t.TempDir() that also holds its
// cluster config file, without persistence. It joins them with redis-cli
// --cluster create (no replicas) and returns once every node reports
// cluster_state:ok and all nodes agree on which master serves which slots.
// It fails the test with an install hint when redis-server or redis-cli is
// not on PATH, and with the nodes' log tails when the cluster does not
// form within 30 s. Every node is killed in t.Cleanup.
func StartCluster(t testing.TB, masters int) *Cluster {
	t.Helper()
	if masters < 3 {
		t.Fatalf("redistest: a Redis Cluster needs at least 3 masters, not %d", masters)
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatalf("redistest: redis-cli not found on PATH; %s", cliInstallHint)
	}
	root := t.TempDir()
	c := &Cluster{}
	for i := range masters {
		dir := filepath.Join(root, "node"+strconv.Itoa(i))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatalf("redistest: %v", err)
		}
		s := newServer(t, dir, []Option{WithArgs(
			"--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(dir, "nodes.conf"),
			"--cluster-node-timeout", nodeTimeout,
		)})
		if err := s.startOnFreePort(freeClusterPort); err != nil {
			t.Fatalf("redistest: cluster node %d: %v", i, err)
		}
		c.nodes = append(c.nodes, s)
		c.Addrs = append(c.Addrs, s.Addr)
	}

	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	args := append([]string{"--cluster", "create"}, c.Addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redistest: redis-cli --cluster create: %v; output:\n%s\n%s", err, out, c.logs())
	}
	if err := c.waitReady(ctx); err != nil {
		t.Fatalf("redistest: %v\n%s", err, c.logs())
	}
	return c
}

// waitReady polls every node until check passes or ctx ends.
func (c *Cluster) waitReady(ctx context.Context) error {
	for {
		err := c.check()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the cluster was not ready within %v: %w", clusterTimeout, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// check returns nil when every node reports cluster_state:ok and sees the
// same slot map, in which each master serves slots and all slots are
// served.
func (c *Cluster) check() error {
	var first string
	for _, addr := range c.Addrs {
		info, err := command(addr, "CLUSTER", "INFO")
		if err != nil {
			return fmt.Errorf("%s: %w", addr, err)
		}
		if !strings.Contains(info, "cluster_state:ok\r\n") {
			return fmt.Errorf("%s: cluster_state is not ok:\n%s", addr, info)
		}
		nodes, err := command(addr, "CLUSTER", "NODES")
		if err != nil {
			return fmt.Errorf("%s: %w", addr, err)
		}
		view, err := slotMap(nodes)
		if err != nil {
			return fmt.Errorf("%s: %w", addr, err)
		}
		switch {
		case first == "":
			first = view
			if err := c.complete(view); err != nil {
				return fmt.Errorf("%s: %w", addr, err)
			}
		case view != first:
			return fmt.Errorf("the nodes disagree on the slots: %s sees\n%s\nwhile %s sees\n%s", c.Addrs[0], first, addr, view)
		}
	}
	return nil
}

// complete checks that a slot map names exactly the cluster's masters.
func (c *Cluster) complete(view string) error {
	var addrs []string
	for _, line := range strings.Split(view, "\n") {
		addrs = append(addrs, strings.Fields(line)[0])
	}
	want := slices.Sorted(slices.Values(c.Addrs))
	if !slices.Equal(addrs, want) {
		return fmt.Errorf("the masters serving slots are %v, want %v", addrs, want)
	}
	return nil
}

// slotMap turns a CLUSTER NODES reply into one line per master serving
// slots, "addr range...", sorted, leaving out what only the answering node
// knows (its own flag, slots being migrated). It fails unless all slots
// are served.
func slotMap(nodes string) (string, error) {
	var lines []string
	served := 0
	for _, line := range strings.Split(strings.TrimSpace(nodes), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 || !slices.Contains(strings.Split(f[2], ","), "master") {
			continue
		}
		addr, _, _ := strings.Cut(f[1], "@")
		var ranges []string
		for _, r := range f[8:] {
			if strings.HasPrefix(r, "[") {
				continue
			}
			lo, hi, isRange := strings.Cut(r, "-")
			if !isRange {
				hi = lo
			}
			a, errA := strconv.Atoi(lo)
			b, errB := strconv.Atoi(hi)
			if errA != nil || errB != nil || b < a {
				return "", fmt.Errorf("bad slot range %q in CLUSTER NODES", r)
			}
			served += b - a + 1
			ranges = append(ranges, r)
		}
		if len(ranges) > 0 {
			lines = append(lines, addr+" "+strings.Join(ranges, " "))
		}
	}
	if served != numSlots {
		return "", fmt.Errorf("%d of %d slots are served", served, numSlots)
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n"), nil
}

// logs returns the tail of every node's log, for failure messages.
func (c *Cluster) logs() string {
	var b strings.Builder
	for _, s := range c.nodes {
		fmt.Fprintf(&b, "--- log of %s:\n%s\n", s.Addr, s.tail())
	}
	return b.String()
}

// freeClusterPort picks a free loopback port whose cluster bus port is
// free as well.
func freeClusterPort() (int, error) {
	for range 100 {
		port, err := freePort()
		if err != nil {
			return 0, err
		}
		if port+busOffset > 65535 {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port+busOffset)))
		if err != nil {
			continue
		}
		if err := l.Close(); err != nil {
			return 0, err
		}
		return port, nil
	}
	return 0, errors.New("found no free port with a free cluster bus port")
}
