package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
)

var cmdList = &command{
	name:    "list",
	args:    "",
	summary: "list the locks that exist now (held, or with waiters)",
	flags: func(fs *flag.FlagSet, o *opts) {
		fs.StringVar(&o.match, "match", "*", "only keys matching `GLOB` (Redis glob: * ? [abc] [^a] \\x)")
	},
	help: `List finds the locks that exist now, held or with waiters queued, by SCAN over
the store's keys (on a Redis Cluster, over every master), and shows each
lock's state in one line. A lock that is free with nobody waiting has no
keys (apart from its last fencing token) and is not listed. Locks of every
kind are listed (KIND lock, rwlock, semaphore; see 'disgo help inspect'):
a name with a mutex and a read-write lock has a line for each.

--namespace NS lists the locks of that namespace only; without it, locks of
every namespace are listed. --match GLOB keeps the keys (without their
namespace) that match GLOB. SCAN reads the store in steps: a lock taken or
freed while list runs may or may not be shown.

Columns: NAMESPACE, KEY, KIND, HOLDER, HOLDS, FENCE, LEASE (left), WAITERS.
HOLDER is, for a mutex, the holder's owner token; for a read-write lock,
the writer's owner token or "N readers"; for a semaphore, "USED/LIMIT
permits" (a semaphore whose limit is not recorded: "USED permits"); "(free)"
when only waiters exist (a semaphore: "0/LIMIT permits"). For the kinds with many
holdings, HOLDS is the hold counts summed, FENCE the greatest fencing
token and LEASE the longest lease left of the holdings.

With --json it prints one object per lock, one per line, as inspect --json
(whose help describes the fields of each kind).

The Redis user needs +scan besides the locking rules (see the README).

Example:
  disgo list --namespace jobs --match 'night*'`,
	run: runList,
}

func runList(ctx context.Context, a *app, o *opts, args []string) error {
	if len(args) > 0 {
		return usagef("list takes no arguments (got %q); use --match GLOB", strings.Join(args, " "))
	}
	re, err := compileGlob(o.match)
	if err != nil {
		return usagef("--match %q: %v", o.match, err)
	}
	s, err := a.connect(ctx, o)
	if err != nil {
		return err
	}
	defer s.Close()

	// Every key of the prefix, grouped by lock name.
	present := map[string]map[string]bool{}
	sctx, cancel := context.WithTimeout(ctx, 10*o.timeout)
	defer cancel()
	err = s.admin.Scan(sctx, globEscape(s.layout.Prefix)+":{*", func(k string) {
		name, suf, ok := parseKey(s.layout, k)
		if !ok {
			return
		}
		if present[name] == nil {
			present[name] = map[string]bool{}
		}
		present[name][suf] = true
	})
	if err != nil {
		return s.diagnose(err)
	}
	names := make([]string, 0, len(present))
	for name := range present {
		ns, key, ok := splitName(name)
		if !ok {
			ns, key = "", name
		}
		if (o.set["namespace"] || o.namespace != "") && ns != o.namespace {
			continue
		}
		if !re.MatchString(key) || len(kindsOf(present[name])) == 0 {
			continue
		}
		names = append(names, name)
	}
	sort.Strings(names)

	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	if !o.json {
		fmt.Fprintln(tw, "NAMESPACE\tKEY\tKIND\tHOLDER\tHOLDS\tFENCE\tLEASE\tWAITERS")
	}
	enc := json.NewEncoder(a.stdout)
	for _, name := range names {
		for _, k := range kindsOf(present[name]) {
			v, err := k.inspect(ctx, s, name)
			if err != nil {
				return s.diagnose(err)
			}
			if !v.live() {
				continue // freed since the scan
			}
			if o.json {
				if err := enc.Encode(v); err != nil {
					return err
				}
				continue
			}
			h := newHeader(k.name, name)
			cols := append([]string{dash(h.Namespace), h.Key, k.name}, v.row()...)
			fmt.Fprintln(tw, strings.Join(cols, "\t"))
		}
	}
	return tw.Flush()
}
