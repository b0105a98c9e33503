package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
)

var cmdInspect = &command{
	name:    "inspect",
	args:    "NAME...",
	summary: "show the holders, leases, fencing tokens and queue of locks",
	flags: func(fs *flag.FlagSet, o *opts) {
		kindFlag(fs, o, "show the lock of this kind only, even when it is free")
	},
	help: `Inspect shows, for each NAME, the state of its lock now: the holder's owner
token, the hold count (re-entries), the fencing token of the holding, the
lease left, and the fair queue in order with each waiter's position, owner,
ticket and heartbeat age (the time since it last renewed its place; a
waiter is evicted when its heartbeat lapses). A store that cannot list its
queue shows the number of waiters only.

One NAME has a lock of each kind, each a lock of its own:
` + kindsHelp() + `Without --kind, inspect shows the lock of every kind of NAME that exists now
(held, or with waiters), one after the other; when none does, the free
mutex ("lock"). With --kind KIND it shows that kind's lock only, free or
not.

A read-write lock shows HOLDER (the writer's owner, "N readers" or
"(free)"), and a semaphore PERMITS (used of limit) and HOLDERS; then every
holding with its owner, MODE (read or write) or PERMITS, hold count,
fencing token and lease left, and the queue with what each waiter WANTS
(read, write, or N permits).

With --json it prints one object per lock shown, one per line. A mutex:
  {"name","namespace","key","kind":"lock","held","owner","count","fence",
   "lease_ms" (-1 when free),"waiters",
   "queue":[{"position","ticket","owner","heartbeat_age_ms","heartbeat_left_ms"}]
   (null when the store cannot list its queue)}
A read-write lock or semaphore:
  {"name","namespace","key","kind":"rwlock"|"semaphore","held",
   "holders":[{"owner","mode" ("read"|"write"; rwlock),"permits" (semaphore),
               "count","fence","lease_ms"}] (by fence),
   "waiters","queue":[... as above, plus "mode" or "permits": what it waits for],
   rwlock: "writer" (owner of the write hold, "" when none),"readers" (read holds),
   semaphore: "limit" (0 when none is recorded),"used" (permits held)}

Examples:
  disgo inspect --namespace jobs nightly weekly
  disgo inspect --kind rwlock --namespace jobs catalog`,
	run: runInspect,
}

func runInspect(ctx context.Context, a *app, o *opts, args []string) error {
	if len(args) == 0 {
		return usagef("inspect needs at least one NAME")
	}
	if o.kind != "" {
		if _, err := lookupKind(o.kind); err != nil {
			return err
		}
	}
	s, err := a.connect(ctx, o)
	if err != nil {
		return err
	}
	defer s.Close()
	for i, key := range args {
		name, err := s.lockName(key)
		if err != nil {
			return err
		}
		vs, err := inspectName(ctx, s, name)
		if err != nil {
			return s.diagnose(err)
		}
		for j, v := range vs {
			if (i > 0 || j > 0) && !o.json {
				fmt.Fprintln(a.stdout)
			}
			if err := show(a.stdout, o, v); err != nil {
				return err
			}
		}
	}
	return nil
}

// kindFlag registers --kind on fs.
func kindFlag(fs *flag.FlagSet, o *opts, what string) {
	fs.StringVar(&o.kind, "kind", "", what+" (`KIND`: "+kindNames()+")")
}

// inspectName reads the locks of name: of the kind o.kind when it is
// given, whatever its state; else of every kind that exists now (held, or
// with waiters), in the order of kinds, or, when none does, the free lock
// of the first kind (the mutex).
func inspectName(ctx context.Context, s *session, name string) ([]view, error) {
	if s.o.kind != "" {
		k, err := lookupKind(s.o.kind)
		if err != nil {
			return nil, err
		}
		v, err := k.inspect(ctx, s, name)
		if err != nil {
			return nil, err
		}
		return []view{v}, nil
	}
	ks, err := existingKinds(ctx, s, name, nil)
	if err != nil {
		return nil, err
	}
	var vs []view
	var first view
	for _, k := range ks {
		v, err := k.inspect(ctx, s, name)
		if err != nil {
			return nil, err
		}
		if k == &kinds[0] {
			first = v
		}
		if v.live() {
			vs = append(vs, v)
		}
	}
	if len(vs) > 0 {
		return vs, nil
	}
	if first == nil {
		if first, err = kinds[0].inspect(ctx, s, name); err != nil {
			return nil, err
		}
	}
	return []view{first}, nil
}

// existingKinds returns the kinds, other than skip, of which name has live
// keys (see kind.live), in the order of kinds.
func existingKinds(ctx context.Context, s *session, name string, skip *kind) ([]*kind, error) {
	cctx, cancel := s.call(ctx)
	defer cancel()
	var ks []*kind
	for i := range kinds {
		if &kinds[i] == skip {
			continue
		}
		keys := make([]string, len(kinds[i].live))
		for j, suf := range kinds[i].live {
			keys[j] = s.key(name, suf)
		}
		n, err := s.admin.Exists(cctx, keys...)
		if err != nil {
			return nil, err
		}
		if n > 0 {
			ks = append(ks, &kinds[i])
		}
	}
	return ks, nil
}

// show writes v as a table or, with --json, as one line of JSON.
func show(w io.Writer, o *opts, v view) error {
	if o.json {
		return json.NewEncoder(w).Encode(v)
	}
	v.detail(w)
	return nil
}
