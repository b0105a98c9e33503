package redisinfo

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

const before = "# Server\r\nredis_version:7.0.15\r\n# Clients\r\nconnected_clients:2\r\n# Stats\r\n" +
	"total_commands_processed:100\r\ntotal_reads_processed:50\r\n# Commandstats\r\n" +
	"cmdstat_info:calls=3,usec=47,usec_per_call=15.67,rejected_calls=0,failed_calls=0\r\n" +
	"cmdstat_set:calls=10,usec=5,usec_per_call=0.50,rejected_calls=0,failed_calls=0\r\n"

const after = "# Server\r\nredis_version:7.0.15\r\n# Clients\r\nconnected_clients:5\r\n# Stats\r\n" +
	"total_commands_processed:131\r\ntotal_reads_processed:71\r\n# Commandstats\r\n" +
	"cmdstat_info:calls=4,usec=60,usec_per_call=15.00,rejected_calls=0,failed_calls=0\r\n" +
	"cmdstat_set:calls=10,usec=5,usec_per_call=0.50,rejected_calls=0,failed_calls=0\r\n" +
	"cmdstat_evalsha:calls=20,usec=30,usec_per_call=1.50,rejected_calls=0,failed_calls=0\r\n" +
	"cmdstat_client|tracking:calls=10,usec=30,usec_per_call=3.00,rejected_calls=0,failed_calls=0\r\n" +
	"# CPU\r\nused_cpu_sys:1.500000\r\nused_cpu_user:2.250000\r\nused_cpu_sys_children:9.000000\r\nused_cpu_sys_main_thread:1.400000\r\n"

func TestParse(t *testing.T) {
	s := Parse(after)
	assert.Equal(t, "7.0.15", s.Version)
	assert.Equal(t, int64(131), s.Commands)
	assert.Equal(t, int64(71), s.Reads)
	assert.Equal(t, int64(5), s.Clients)
	assert.Equal(t, map[string]int64{"info": 4, "set": 10, "evalsha": 20, "client|tracking": 10}, s.Calls)
	assert.Equal(t, map[string]int64{"info": 60, "set": 5, "evalsha": 30, "client|tracking": 30}, s.Usec)
	assert.InDelta(t, 3.75, s.CPU, 1e-9, "user + sys of the server, not of children nor the main thread alone")
}

func TestSubDiscountsTheBeforeInfo(t *testing.T) {
	d := Sub(Parse(after), Parse(before))
	assert.Equal(t, int64(30), d.Commands)
	assert.Equal(t, int64(20), d.Reads)
	assert.Equal(t, int64(3), d.Clients)
	assert.Equal(t, map[string]int64{"evalsha": 20, "client|tracking": 10}, d.Calls, "unchanged and INFO-only counts are dropped")
	assert.Equal(t, map[string]int64{"evalsha": 30, "client|tracking": 30}, d.Usec, "INFO's time is left out")
	assert.InDelta(t, 3.75, d.CPU, 1e-9)
}

func TestAdd(t *testing.T) {
	a := Delta{Commands: 1, Reads: 2, Clients: 3, Calls: map[string]int64{"set": 1}, Usec: map[string]int64{"set": 4}, CPU: 0.5}
	b := Delta{Commands: 10, Reads: 20, Clients: 30, Calls: map[string]int64{"set": 2, "get": 5}, CPU: 1}
	assert.Equal(t, Delta{Commands: 11, Reads: 22, Clients: 33, Calls: map[string]int64{"set": 3, "get": 5},
		Usec: map[string]int64{"set": 4}, CPU: 1.5}, a.Add(b))
}

func TestTopLevelLeavesOutScriptCommands(t *testing.T) {
	d := Delta{
		Calls: map[string]int64{"evalsha": 20, "get": 20, "del": 10, "set": 10},
		Usec:  map[string]int64{"evalsha": 100, "get": 8, "del": 6, "set": 10},
	}
	// get and del only ever ran inside the script, set half of the time.
	calls, usec := d.TopLevel(map[string]float64{"evalsha": 0, "get": 1, "del": 1, "set": 0.5})
	assert.InDelta(t, 25.0, calls, 1e-9)
	assert.InDelta(t, 105.0, usec, 1e-9)
	calls, usec = d.TopLevel(nil)
	assert.InDelta(t, 60.0, calls, 1e-9, "without a classification everything is top-level")
	assert.InDelta(t, 124.0, usec, 1e-9)
}

func TestParseMonitor(t *testing.T) {
	known := func(c string) bool { return c == "client|tracking" }
	for _, tc := range []struct {
		line string
		want MonitorLine
		ok   bool
	}{
		{`+1700000000.123456 [0 127.0.0.1:50000] "EVALSHA" "abc" "1" "k"`, MonitorLine{"evalsha", false}, true},
		{`1700000000.123457 [0 lua] "set" "k" "v\" \"x"`, MonitorLine{"set", true}, true},
		{`1700000000.1 [0 unix:/tmp/r.sock] "CLIENT" "TRACKING" "on"`, MonitorLine{"client|tracking", false}, true},
		{`1700000000.1 [0 127.0.0.1:1] "CLIENT" "SETNAME" "x"`, MonitorLine{"client", false}, true},
		{`1700000000.1 [0 127.0.0.1:1] "PING"`, MonitorLine{"ping", false}, true},
		{"+OK", MonitorLine{}, false},
		{`1700000000.1 [0 lua] `, MonitorLine{}, false},
		{`1700000000.1 [0 lua "set`, MonitorLine{}, false},
	} {
		m, ok := ParseMonitor(tc.line, known)
		assert.Equal(t, tc.ok, ok, tc.line)
		assert.Equal(t, tc.want, m, tc.line)
	}
}

func TestScripted(t *testing.T) {
	share := Scripted([]MonitorLine{{"evalsha", false}, {"get", true}, {"set", true}, {"set", false}, {"evalsha", false}, {"get", true}})
	assert.Equal(t, map[string]float64{"evalsha": 0, "get": 1, "set": 0.5}, share)
	assert.Empty(t, Scripted(nil))
}
