// Package redisinfo reads the counters the lock benchmark needs from the
// text of Redis's INFO command, subtracts two readings, and tells from the
// lines of MONITOR which commands run inside scripts. It does not talk to
// Redis itself; its functions are pure and safe for concurrent use.
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
	// Usec maps each command of INFO commandstats to the microseconds
	// spent in it. A script's time includes that of the commands it runs,
	// which are also counted under their own names.
	Usec map[string]int64
	// CPU is used_cpu_user + used_cpu_sys: the server's CPU time in
	// seconds, all its threads.
	CPU float64
}

// Parse reads a Snapshot from INFO output. Fields it does not find stay
// zero; lines it does not know are ignored.
func Parse(info string) Snapshot {
	s := Snapshot{Calls: make(map[string]int64), Usec: make(map[string]int64)}
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
		case "used_cpu_user", "used_cpu_sys":
			f, _ := strconv.ParseFloat(value, 64)
			s.CPU += f
		default:
			if cmd, ok := strings.CutPrefix(field, "cmdstat_"); ok {
				s.Calls[cmd] = stat(value, "calls=")
				s.Usec[cmd] = stat(value, "usec=")
			}
		}
	}
	return s
}

// stat extracts n from "name=n" in "calls=n,usec=...", where prefix is
// "name=".
func stat(stats, prefix string) int64 {
	for kv := range strings.SplitSeq(stats, ",") {
		if v, ok := strings.CutPrefix(kv, prefix); ok {
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
	Usec                     map[string]int64 // commands whose time changed, INFO left out
	CPU                      float64          // server CPU seconds
}

// Sub returns after - before, less the one INFO request that produced the
// before snapshot (which after counts as a command, a read and an info call).
// The time of INFO is left out of Usec altogether.
func Sub(after, before Snapshot) Delta {
	d := Delta{
		Commands: after.Commands - before.Commands - 1,
		Reads:    after.Reads - before.Reads - 1,
		Clients:  after.Clients - before.Clients,
		Calls:    make(map[string]int64),
		Usec:     make(map[string]int64),
		CPU:      after.CPU - before.CPU,
	}
	for cmd, n := range after.Calls {
		if cmd == "info" {
			n--
		}
		if diff := n - before.Calls[cmd]; diff != 0 {
			d.Calls[cmd] = diff
		}
	}
	for cmd, us := range after.Usec {
		if diff := us - before.Usec[cmd]; diff != 0 && cmd != "info" {
			d.Usec[cmd] = diff
		}
	}
	return d
}

// Add returns the sum of two deltas, for totals over several runs.
func (d Delta) Add(e Delta) Delta {
	s := Delta{Commands: d.Commands + e.Commands, Reads: d.Reads + e.Reads, Clients: d.Clients + e.Clients,
		Calls: make(map[string]int64), Usec: make(map[string]int64), CPU: d.CPU + e.CPU}
	for _, m := range []map[string]int64{d.Calls, e.Calls} {
		for cmd, n := range m {
			s.Calls[cmd] += n
		}
	}
	for _, m := range []map[string]int64{d.Usec, e.Usec} {
		for cmd, n := range m {
			s.Usec[cmd] += n
		}
	}
	return s
}

// TopLevel returns the calls and the microseconds of d that clients asked
// for themselves, leaving out the commands that scripts ran: the calls of
// each command count in proportion 1 - inScript[cmd], and its time too
// (the script's time already includes them). inScript maps a command, as
// named in commandstats, to the share of its calls made from scripts, as
// [Scripted] measures it; a command missing from it counts as top-level.
func (d Delta) TopLevel(inScript map[string]float64) (calls, usec float64) {
	for cmd, n := range d.Calls {
		calls += float64(n) * (1 - inScript[cmd])
	}
	for cmd, us := range d.Usec {
		usec += float64(us) * (1 - inScript[cmd])
	}
	return calls, usec
}

// MonitorLine is what one line of MONITOR output says about a command.
type MonitorLine struct {
	// Command is the command as INFO commandstats names it, in lower case:
	// "set", or "client|tracking" for a subcommand of a container command
	// (when known is given to [ParseMonitor] and says so).
	Command string
	// Script says the command ran inside a script ("[0 lua]").
	Script bool
}

// ParseMonitor reads one line of MONITOR output, such as
//
//	1700000000.123456 [0 127.0.0.1:50000] "SET" "k" "v"
//	1700000000.123457 [0 lua] "set" "k" "v"
//
// with or without the leading "+" of RESP. known reports whether a
// commandstats name such as "client|tracking" exists; the first two
// arguments name the command if it does. ok is false for lines that are
// not a command ("OK", garbage).
func ParseMonitor(line string, known func(string) bool) (m MonitorLine, ok bool) {
	line = strings.TrimPrefix(strings.TrimSpace(line), "+")
	_, rest, found := strings.Cut(line, " [")
	if !found {
		return m, false
	}
	origin, rest, found := strings.Cut(rest, "] ")
	if !found {
		return m, false
	}
	args := quotedArgs(rest, 2)
	if len(args) == 0 || args[0] == "" {
		return m, false
	}
	m.Script = strings.HasSuffix(origin, " lua")
	m.Command = strings.ToLower(args[0])
	if len(args) > 1 && known != nil {
		if sub := m.Command + "|" + strings.ToLower(args[1]); known(sub) {
			m.Command = sub
		}
	}
	return m, true
}

// quotedArgs returns up to n double-quoted arguments from the start of s,
// with backslash escapes kept as they are (a command name has none).
func quotedArgs(s string, n int) []string {
	var args []string
	for len(args) < n {
		s = strings.TrimLeft(s, " ")
		if !strings.HasPrefix(s, `"`) {
			break
		}
		end := 1
		for end < len(s) && s[end] != '"' {
			if s[end] == '\\' {
				end++
			}
			end++
		}
		if end >= len(s) {
			break
		}
		args = append(args, s[1:end])
		s = s[end+1:]
	}
	return args
}

// Scripted returns, for each command in lines, the share of its calls
// that ran inside a script, between 0 and 1.
func Scripted(lines []MonitorLine) map[string]float64 {
	all, inScript := map[string]int{}, map[string]int{}
	for _, l := range lines {
		all[l.Command]++
		if l.Script {
			inScript[l.Command]++
		}
	}
	share := make(map[string]float64, len(all))
	for cmd, n := range all {
		share[cmd] = float64(inScript[cmd]) / float64(n)
	}
	return share
}
