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
	"cmdstat_client|tracking:calls=10,usec=30,usec_per_call=3.00,rejected_calls=0,failed_calls=0\r\n"

func TestParse(t *testing.T) {
	s := Parse(after)
	assert.Equal(t, "7.0.15", s.Version)
	assert.Equal(t, int64(131), s.Commands)
	assert.Equal(t, int64(71), s.Reads)
	assert.Equal(t, int64(5), s.Clients)
	assert.Equal(t, map[string]int64{"info": 4, "set": 10, "evalsha": 20, "client|tracking": 10}, s.Calls)
}

func TestSubDiscountsTheBeforeInfo(t *testing.T) {
	d := Sub(Parse(after), Parse(before))
	assert.Equal(t, int64(30), d.Commands)
	assert.Equal(t, int64(20), d.Reads)
	assert.Equal(t, int64(3), d.Clients)
	assert.Equal(t, map[string]int64{"evalsha": 20, "client|tracking": 10}, d.Calls, "unchanged and INFO-only counts are dropped")
}

func TestAdd(t *testing.T) {
	a := Delta{Commands: 1, Reads: 2, Clients: 3, Calls: map[string]int64{"set": 1}}
	b := Delta{Commands: 10, Reads: 20, Clients: 30, Calls: map[string]int64{"set": 2, "get": 5}}
	assert.Equal(t, Delta{Commands: 11, Reads: 22, Clients: 33, Calls: map[string]int64{"set": 3, "get": 5}}, a.Add(b))
}
