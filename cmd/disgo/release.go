package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"

	"github.com/disgolock/disgo/locker/driver"
)

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

It runs the store's force release (Locker.ForceRelease: one script,
forcerelease.lua): the holding ends whatever its hold count, and the lock
passes on as after a release, straight to the head of the fair queue (or
every waiter is woken). The fence key stays, so the next holder gets a
greater fencing token. The former holder learns of it at its next renewal
(a third of its lease at most), as a loss that matches locker.ErrRevoked; a
holder with a fixed lease that is not renewed learns nothing before its
lease ends. A disgo run that held the lock then stops its command and exits
with status 79.

Exit status 0 when a holding was freed, 1 when the lock was free already.
With --json it prints {"name","namespace","key","freed","former"} where
former describes the holding that ended (owner and fence).

Example:
  disgo release --force --namespace jobs nightly`,
	run: runRelease,
}

type releaseResult struct {
	header
	Freed  bool   `json:"freed"`
	Former string `json:"former,omitempty"`
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
	fr, ok := s.store.(driver.ForceReleaser)
	if !ok {
		return fmt.Errorf("the %T store has no force release", s.store)
	}
	v, err := inspectName(ctx, s, name)
	if err != nil {
		return s.diagnose(err)
	}
	held, err := fr.ForceRelease(cctx, name)
	if err != nil {
		return s.diagnose(err)
	}
	res.Freed = held
	if lv, ok := v.(*lockView); ok && lv.Held && held {
		res.Former = fmt.Sprintf("owner %s, fence %d", lv.Owner, lv.Fence)
	}
	if o.json {
		if err := json.NewEncoder(a.stdout).Encode(res); err != nil {
			return err
		}
	} else if res.Freed {
		fmt.Fprintf(a.stdout, "freed %s (was: %s); the lock passed on to the next waiter\n", displayName(res.header), res.Former)
	}
	if !res.Freed {
		return &exitErr{code: exitFailure, msg: fmt.Sprintf("the lock %q is free already: nothing to release", args[0])}
	}
	return nil
}
