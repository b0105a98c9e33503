package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

var cmdWatch = &command{
	name:    "watch",
	args:    "NAME",
	summary: "a live view of a lock's holder and queue, refreshed until interrupted",
	flags: func(fs *flag.FlagSet, o *opts) {
		fs.DurationVar(&o.interval, "interval", time.Second, "time between refreshes")
		fs.IntVar(&o.count, "count", 0, "stop after `N` refreshes (0: until interrupted)")
		kindFlag(fs, o, "watch the lock of this kind only, even when it is free")
	},
	help: `Watch shows the state of the lock NAME as inspect does, again every --interval,
until interrupted (Ctrl-C; exit status 0) or, with --count N, N times. On a
terminal each refresh replaces the previous one; otherwise each is printed
after a line with its time. A store error during the watch is shown, and
the next refresh tries again.

Each refresh shows what inspect shows: without --kind, the lock of every
kind of NAME that exists at that moment (or the free mutex), so the view
follows NAME whatever kind of lock it is; with --kind KIND, that kind's
lock only, free or not.

With --json it prints one object per lock shown per refresh, one per line:
the fields of inspect --json plus "time" (RFC 3339, the same for the locks
of one refresh), or {"time","error"} for a failed refresh.

Example:
  disgo watch --interval 500ms --namespace jobs nightly`,
	run: runWatch,
}

func runWatch(ctx context.Context, a *app, o *opts, args []string) error {
	if len(args) != 1 {
		return usagef("watch needs exactly one NAME")
	}
	if o.interval <= 0 {
		return usagef("--interval %v: want a positive duration", o.interval)
	}
	if o.count < 0 {
		return usagef("--count %d: negative", o.count)
	}
	if o.kind != "" {
		if _, err := lookupKind(o.kind); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	s, err := a.connect(ctx, o)
	if err != nil {
		return err
	}
	defer s.Close()
	name, err := s.lockName(args[0])
	if err != nil {
		return err
	}
	tty := a.stdout == os.Stdout && isTerminal(os.Stdout)
	tick := time.NewTicker(o.interval)
	defer tick.Stop()
	for n := 1; ; n++ {
		now := time.Now()
		vs, err := inspectName(ctx, s, name)
		if ctx.Err() != nil {
			return nil
		}
		switch {
		case o.json && err != nil:
			if err := watchJSON(a.stdout, now, nil, s.diagnose(err)); err != nil {
				return err
			}
		case o.json:
			for _, v := range vs {
				if err := watchJSON(a.stdout, now, v, nil); err != nil {
					return err
				}
			}
		default:
			if tty {
				fmt.Fprint(a.stdout, "\x1b[H\x1b[2J")
			} else if n > 1 {
				fmt.Fprintln(a.stdout)
			}
			fmt.Fprintf(a.stdout, "--- %s (every %v; Ctrl-C to stop)\n", now.Format("15:04:05.000"), o.interval)
			if err != nil {
				fmt.Fprintf(a.stdout, "error: %v\n", s.diagnose(err))
			} else {
				for i, v := range vs {
					if i > 0 {
						fmt.Fprintln(a.stdout)
					}
					v.detail(a.stdout)
				}
			}
		}
		if o.count > 0 && n >= o.count {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// watchJSON writes one refresh as a line of JSON: "time" first, then the
// fields of the view, or "error".
func watchJSON(w io.Writer, now time.Time, v view, failed error) error {
	t, _ := json.Marshal(now.Format(time.RFC3339Nano))
	var body []byte
	if failed != nil {
		e, _ := json.Marshal(failed.Error())
		body = append(append([]byte(`"error":`), e...), '}')
	} else {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		body = b[1:] // the view's fields and its closing brace
	}
	line := append(append(append([]byte(`{"time":`), t...), ','), body...)
	_, err := w.Write(append(line, '\n'))
	return err
}

// isTerminal reports whether f is a character device (a terminal).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
