package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strings"

	"github.com/disgolock/disgo/locker/driver"
)

var cmdRelease = &command{
	name:    "release",
	args:    "--force [--kind KIND] NAME",
	summary: "free a lock whoever holds it (operator's override)",
	flags: func(fs *flag.FlagSet, o *opts) {
		fs.BoolVar(&o.force, "force", false, "required: confirm that the holder loses the lock")
		kindFlag(fs, o, "free the lock of this kind (default lock, the mutex)")
	},
	help: `Release frees the lock NAME, whoever holds it, so that the next waiter gets it.
Use it for a lock whose holder is stuck or gone; a holder that is alive goes
on working without the lock until it notices, so stop it first when you can.
It refuses to run without --force.

--kind KIND chooses which of the locks of NAME to free (each is a lock of
its own):
` + kindsHelp() + `The default is lock, the mutex: a read-write lock or semaphore is freed
with --kind rwlock or --kind semaphore only.

It runs the store's force release (Locker.ForceRelease: one script,
forcerelease.lua, or kind_forcerelease.lua for the other kinds): every
holding ends whatever its hold count (a read-write lock's read and write
holds, a semaphore's permits, all of them), and the lock passes on as
after a release, straight to the head of the fair queue (or every waiter
is woken). The fence key stays, so the next holder gets a greater fencing
token. Each former holder learns of it at its next renewal (a third of its
lease at most), as a loss that matches locker.ErrRevoked; a holder with a
fixed lease that is not renewed learns nothing before its lease ends. A
disgo run that held the lock then stops its command and exits with status
79.

Exit status 0 when a holding was freed, 1 when the lock of that kind was
free already (the message then names the other kinds NAME exists as, if
any). With --json it prints {"name","namespace","key","kind","freed",
"former"} where former describes the holdings that ended (owner, read or
write or permits, and fence of each).

Examples:
  disgo release --force --namespace jobs nightly
  disgo release --force --kind semaphore --namespace jobs pool`,
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
	k := &kinds[0]
	if o.kind != "" {
		var err error
		if k, err = lookupKind(o.kind); err != nil {
			return err
		}
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
	res := releaseResult{header: newHeader(k.name, name)}
	b, err := k.backend(s)
	if err != nil {
		return err
	}
	fr, ok := b.(driver.ForceReleaser)
	if !ok {
		return fmt.Errorf("the %s store has no force release of a %s", o.adapter, k.name)
	}
	v, err := k.inspect(ctx, s, name)
	if err != nil {
		return s.diagnose(err)
	}
	cctx, cancel := s.call(ctx)
	defer cancel()
	held, err := fr.ForceRelease(cctx, name)
	if err != nil {
		return s.diagnose(err)
	}
	res.Freed = held
	if held {
		res.Former = v.holdings()
	}
	if o.json {
		if err := json.NewEncoder(a.stdout).Encode(res); err != nil {
			return err
		}
	} else if res.Freed {
		what := k.name + " " // the mutex is "the lock", as ever
		if k == &kinds[0] {
			what = ""
		}
		fmt.Fprintf(a.stdout, "freed %s%s (was: %s); the lock passed on to the next waiter\n", what, displayName(res.header), res.Former)
	}
	if !res.Freed {
		msg := fmt.Sprintf("the %s %q is free already: nothing to release", k.name, args[0])
		if k == &kinds[0] {
			msg = fmt.Sprintf("the lock %q is free already: nothing to release", args[0])
		}
		ex := &exitErr{code: exitFailure, msg: msg}
		if others, err := existingKinds(ctx, s, name, k); err == nil && len(others) > 0 {
			var hs []string
			for _, o := range others {
				hs = append(hs, "--kind "+o.name)
			}
			ex.hint = fmt.Sprintf("%q exists as another kind of lock: add %s", args[0], strings.Join(hs, " or "))
		}
		return ex
	}
	return nil
}
