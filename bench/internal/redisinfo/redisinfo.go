// Package redisinfo reads the counters the lock benchmark needs from the
// text of Redis's INFO command, and subtracts two readings. It does not talk
// to Redis itself; its functions are pure and safe for concurrent use.
package redisinfo

import (
	"strconv"
	"strings"
)

// Snapshot is one reading of a server's counters.
type Snapshot struct {
	// Version is redis_version.
	Version string
	// Commands is total_commands_processed. Redis counts the commands a
	// script runs as well as the script call itself.
	Commands int64
	// Reads is total_reads_processed: reads from client sockets, which is
	// one per request unless a client pipelines.
	Reads int64
	// Clients is connected_clients.
	Clients int64
	// Calls maps each command of INFO commandstats (such as "evalsha" or
	// "client|tracking") to its number of calls.
	Calls map[string]int64
}

// Parse reads a Snapshot from INFO output. Fields it does not find stay
// zero; lines it does not know are ignored.
func Parse(info string) Snapshot {
	s := Snapshot{Calls: make(map[string]int64)}
	for line := range strings.Lines(info) {
		field, value, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		switch field {
		case "redis_version":
			s.Version = value
		case "total_commands_processed":
			s.Commands = atoi(value)
		case "total_reads_processed":
			s.Reads = atoi(value)
		case "connected_clients":
			s.Clients = atoi(value)
		default:
			if cmd, ok := strings.CutPrefix(field, "cmdstat_"); ok {
				s.Calls[cmd] = calls(value)
			}
		}
	}
	return s
}

// calls extracts n from "calls=n,usec=...".
func calls(stat string) int64 {
	for kv := range strings.SplitSeq(stat, ",") {
		if v, ok := strings.CutPrefix(kv, "calls="); ok {
			return atoi(v)
		}
	}
	return 0
}

func atoi(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

// Delta is the change of the counters between two snapshots.
type Delta struct {
	Commands, Reads, Clients int64
	Calls                    map[string]int64 // commands whose count changed
}

// Sub returns after - before, less the one INFO request that produced the
// before snapshot (which after counts as a command, a read and an info call).
func Sub(after, before Snapshot) Delta {
	d := Delta{
		Commands: after.Commands - before.Commands - 1,
		Reads:    after.Reads - before.Reads - 1,
		Clients:  after.Clients - before.Clients,
		Calls:    make(map[string]int64),
	}
	for cmd, n := range after.Calls {
		if cmd == "info" {
			n--
		}
		if diff := n - before.Calls[cmd]; diff != 0 {
			d.Calls[cmd] = diff
		}
	}
	return d
}

// Add returns the sum of two deltas, for totals over several runs.
func (d Delta) Add(e Delta) Delta {
	s := Delta{Commands: d.Commands + e.Commands, Reads: d.Reads + e.Reads, Clients: d.Clients + e.Clients, Calls: make(map[string]int64)}
	for _, m := range []map[string]int64{d.Calls, e.Calls} {
		for cmd, n := range m {
			s.Calls[cmd] += n
		}
	}
	return s
}
