package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
)

var cmdInspect = &command{
	name:    "inspect",
	args:    "NAME...",
	summary: "show the holder, lease, fencing token and queue of locks",
	help: `Inspect shows, for each NAME, the state of its lock now: the holder's owner
token, the hold count (re-entries), the fencing token of the holding, the
lease left, and the fair queue in order with each waiter's position, owner,
ticket and heartbeat age (the time since it last renewed its place; a
waiter is evicted when its heartbeat lapses). A store that cannot list its
queue shows the number of waiters only.

With --json it prints one object per NAME, one per line:
  {"name","namespace","key","kind","held","owner","count","fence",
   "lease_ms" (-1 when free),"waiters",
   "queue":[{"position","ticket","owner","heartbeat_age_ms","heartbeat_left_ms"}]
   (null when the store cannot list its queue)}

Example:
  disgo inspect --namespace jobs nightly weekly`,
	run: runInspect,
}

func runInspect(ctx context.Context, a *app, o *opts, args []string) error {
	if len(args) == 0 {
		return usagef("inspect needs at least one NAME")
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
		v, err := inspectName(ctx, s, name)
		if err != nil {
			return s.diagnose(err)
		}
		if i > 0 && !o.json {
			fmt.Fprintln(a.stdout)
		}
		if err := show(a.stdout, o, v); err != nil {
			return err
		}
	}
	return nil
}

// inspectName reads name with the kind its keys say it is; a name without
// keys is shown as a free lock of the first kind.
func inspectName(ctx context.Context, s *session, name string) (view, error) {
	k := &kinds[0]
	if len(kinds) > 1 {
		cctx, cancel := s.call(ctx)
		defer cancel()
		for i := range kinds {
			keys := make([]string, len(kinds[i].live))
			for j, suf := range kinds[i].live {
				keys[j] = s.key(name, suf)
			}
			n, err := s.admin.Exists(cctx, keys...)
			if err != nil {
				return nil, err
			}
			if n > 0 {
				k = &kinds[i]
				break
			}
		}
	}
	return k.inspect(ctx, s, name)
}

// show writes v as a table or, with --json, as one line of JSON.
func show(w io.Writer, o *opts, v view) error {
	if o.json {
		return json.NewEncoder(w).Encode(v)
	}
	v.detail(w)
	return nil
}
