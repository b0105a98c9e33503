package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"

	"github.com/disgolock/disgo/internal/rediscore"
)

// forceReleaser is the operator's force release of a store that has one
// (driver.ForceReleaser): it frees a lock whoever holds it and hands it on
// as a release does.
type forceReleaser interface {
	ForceRelease(ctx context.Context, name string) error
}

var cmdRelease = &command{
	name:    "release",
	args:    "--force NAME",
	summary: "free a lock whoever holds it (operator's override)",
	flags: func(fs *flag.FlagSet, o *opts) {
		fs.BoolVar(&o.force, "force", false, "required: confirm that the holder loses the lock")
	},
	help: `Release frees the lock NAME, whoever holds it, so that the next waiter gets it.
Use it for a lock whose holder is stuck or gone; a holder that is alive goes
on working without the lock until it notices, so stop it first when you can.
It refuses to run without --force.

When the store implements a force release of its own, disgo uses it.
Otherwise it runs, in one MULTI/EXEC transaction on the lock's slot:
  GET <prefix>:{NAME}:lock                   (to report what it freed)
  DEL <prefix>:{NAME}:lock                   (the holding: owner, count, fence)
  SPUBLISH <prefix>:{NAME}:ch *              (wake every waiter, as a release
  PUBLISH <prefix>:{NAME}:ch *                that finds no live head does)
It keeps the fence key (the next holder still gets a greater fencing token)
and the fair queue (the waiters keep their order: the head takes the lock at
its next attempt, which the wake-up triggers). The former holder learns of
the loss only at its next renewal (a third of its lease at most); a holder
with a fixed lease that is not renewed may not learn of it at all. A disgo
run that held the lock then stops its command and exits with status 79.

The Redis user needs +multi +exec besides the locking rules (see the README).

Exit status 0 when a holding was freed, 1 when the lock was free already.
With --json it prints {"name","namespace","key","freed","former"} where
former is the deleted record "<count>[w] <fence> <ticket> <owner>".

Example:
  disgo release --force --namespace jobs nightly`,
	run: runRelease,
}

type releaseResult struct {
	header
	Freed  bool   `json:"freed"`
	Former string `json:"former,omitempty"`
	Method string `json:"method"` // "store" (the store's force release) or "transaction"
}

func runRelease(ctx context.Context, a *app, o *opts, args []string) error {
	if len(args) != 1 {
		return usagef("release needs exactly one NAME")
	}
	if !o.force {
		return usagef("release frees a lock that someone else may hold: add --force to confirm")
	}
	s, err := a.connect(ctx, o)
	if err != nil {
		return err
	}
	defer s.Close()
	name, err := s.lockName(args[0])
	if err != nil {
		return err
	}
	res := releaseResult{header: newHeader(kinds[0].name, name)}
	cctx, cancel := s.call(ctx)
	defer cancel()
	if fr, ok := s.store.(forceReleaser); ok {
		res.Method = "store"
		v, err := inspectName(ctx, s, name)
		if err != nil {
			return s.diagnose(err)
		}
		if err := fr.ForceRelease(cctx, name); err != nil {
			return s.diagnose(err)
		}
		if lv, ok := v.(*lockView); ok && lv.Held {
			res.Freed = true
			res.Former = fmt.Sprintf("owner %s, fence %d", lv.Owner, lv.Fence)
		}
	} else {
		res.Method = "transaction"
		keys := s.layout.Keys(name)
		rec, ok, err := s.admin.Delete(cctx, keys[rediscore.KeyLock], keys[rediscore.KeyChannel])
		if err != nil {
			return s.diagnose(err)
		}
		res.Freed, res.Former = ok, rec
	}
	if o.json {
		if err := json.NewEncoder(a.stdout).Encode(res); err != nil {
			return err
		}
	} else if res.Freed {
		fmt.Fprintf(a.stdout, "freed %s (was: %s); waiters were woken\n", displayName(res.header), describeRecord(res.Former))
	}
	if !res.Freed {
		return &exitErr{code: exitFailure, msg: fmt.Sprintf("the lock %q is free already: nothing to release", args[0])}
	}
	return nil
}

// describeRecord renders a lock record for people.
func describeRecord(rec string) string {
	r, err := rediscore.ParseRecord(rec)
	if err != nil {
		return rec
	}
	return fmt.Sprintf("owner %s, %d hold(s), fence %d", r.Owner, r.Count, r.Fence)
}
