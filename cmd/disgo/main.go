// Command disgo operates disgo locks in Redis from the shell: it shows who
// holds a lock and who waits for it (inspect, list, watch), runs a command
// while holding a lock (run, like flock(1)), and frees a stuck lock
// (release --force). Run "disgo --help" for the full usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Exit statuses. They follow sysexits(3) where one fits; run passes the
// command's own status through and adds the lock's outcomes.
const (
	exitOK          = 0
	exitFailure     = 1   // a check failed (for example release --force of a free lock)
	exitUsage       = 64  // EX_USAGE: bad flags or arguments, bad --redis URL
	exitUnavailable = 69  // EX_UNAVAILABLE: the store is unreachable or failed
	exitTempFail    = 75  // EX_TEMPFAIL: run: the lock was not obtained within --wait
	exitNoPerm      = 77  // EX_NOPERM: the store refused a command or key (ACL), or the password
	exitConfig      = 78  // EX_CONFIG: the store is a Redis Cluster but was given as a standalone server
	exitLost        = 79  // run: the lock was lost while the command ran; the command was stopped
	exitNoExec      = 126 // run: the command was found but is not executable
	exitNotFound    = 127 // run: the command was not found
	exitSignal      = 128 // run: + N when the command (or disgo, while waiting) was ended by signal N
)

// command is one subcommand.
type command struct {
	name     string
	args     string // the positional arguments, for the usage line
	summary  string // one line, for the command list
	help     string // the full description, for "disgo help NAME"
	flags    func(fs *flag.FlagSet, o *opts)
	run      func(ctx context.Context, a *app, o *opts, args []string) error
	trailing bool // run: everything after NAME (and an optional "--") is the command
}

// commands is the table of subcommands, in the order of the help text.
var commands = []*command{cmdInspect, cmdList, cmdRun, cmdRelease, cmdWatch}

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// app is what a subcommand runs with: the streams and the environment.
type app struct {
	stdout, stderr io.Writer
	getenv         func(string) string
}

func main() {
	redis.SetLogger(quietLogger{})
	a := &app{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
	os.Exit(a.main(os.Args[1:]))
}

// main runs the command line args and returns the exit status.
func (a *app) main(args []string) int {
	var o opts
	global := flag.NewFlagSet("disgo", flag.ContinueOnError)
	global.SetOutput(io.Discard)
	o.connFlags(global)
	help := global.Bool("help", false, "")
	global.BoolVar(help, "h", false, "")
	if err := global.Parse(args); err != nil {
		return a.usageError(nil, err)
	}
	rest := global.Args()
	if *help || len(rest) == 0 {
		a.topUsage(a.stdout)
		if len(rest) == 0 && !*help {
			return exitUsage
		}
		return exitOK
	}
	name, rest := rest[0], rest[1:]
	if name == "help" {
		if len(rest) == 0 {
			a.topUsage(a.stdout)
			return exitOK
		}
		c := lookup(rest[0])
		if c == nil {
			return a.usageError(nil, fmt.Errorf("unknown command %q", rest[0]))
		}
		a.cmdUsage(a.stdout, c)
		return exitOK
	}
	c := lookup(name)
	if c == nil {
		return a.usageError(nil, fmt.Errorf("unknown command %q (commands: %s)", name, commandNames()))
	}
	fs := newFlagSet(c, &o)
	pos, err := parse(fs, rest, c.trailing)
	if errors.Is(err, flag.ErrHelp) {
		a.cmdUsage(a.stdout, c)
		return exitOK
	}
	if err != nil {
		return a.usageError(c, err)
	}
	if err := o.resolveEnv(a.getenv); err != nil {
		return a.usageError(c, err)
	}
	ctx := context.Background()
	if err := c.run(ctx, a, &o, pos); err != nil {
		return a.fail(c, err)
	}
	return exitOK
}

func commandNames() string {
	var n []string
	for _, c := range commands {
		n = append(n, c.name)
	}
	return strings.Join(n, ", ")
}

// newFlagSet returns the flags of c: its own and the connection flags, which
// every subcommand accepts (before or after its name).
func newFlagSet(c *command, o *opts) *flag.FlagSet {
	fs := flag.NewFlagSet("disgo "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o.connFlags(fs)
	if c.flags != nil {
		c.flags(fs, o)
	}
	return fs
}

// parse parses flags anywhere among the positional arguments, up to "--".
// With trailing (run), it also stops after the first positional argument
// (the lock name) when the next argument is not a flag: the rest is the
// command to run, whose own flags must not be taken for disgo's.
func parse(fs *flag.FlagSet, args []string, trailing bool) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		consumed := len(args) - fs.NArg()
		dashed := consumed > 0 && args[consumed-1] == "--" // flag drops the terminator
		args = fs.Args()
		if dashed || len(args) == 0 || (trailing && len(pos) == 1) {
			return append(pos, args...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// usageError reports bad usage on stderr and returns exitUsage.
func (a *app) usageError(c *command, err error) int {
	fmt.Fprintf(a.stderr, "disgo: %v\n", err)
	if c != nil {
		fmt.Fprintf(a.stderr, "usage: %s\nRun 'disgo help %s' for details.\n", usageLine(c), c.name)
	} else {
		fmt.Fprintln(a.stderr, "Run 'disgo --help' for usage.")
	}
	return exitUsage
}

// fail reports err and returns its exit status.
func (a *app) fail(c *command, err error) int {
	var ue *usageErr
	if errors.As(err, &ue) {
		return a.usageError(c, ue.err)
	}
	var ex *exitErr
	if errors.As(err, &ex) {
		if ex.msg != "" {
			fmt.Fprintf(a.stderr, "disgo: %s\n", ex.msg)
		}
		if ex.hint != "" {
			fmt.Fprintf(a.stderr, "  hint: %s\n", ex.hint)
		}
		return ex.code
	}
	fmt.Fprintf(a.stderr, "disgo: %v\n", err)
	return exitFailure
}

// usageErr is bad usage found by a subcommand.
type usageErr struct{ err error }

func (e *usageErr) Error() string { return e.err.Error() }

func usagef(format string, a ...any) error { return &usageErr{fmt.Errorf(format, a...)} }

// exitErr ends the program with code, after printing msg and a hint (each
// may be empty).
type exitErr struct {
	code      int
	msg, hint string
}

func (e *exitErr) Error() string { return e.msg }

func (a *app) topUsage(w io.Writer) {
	fmt.Fprint(w, `disgo inspects and uses disgo distributed locks stored in Redis.

Usage:
  disgo [connection flags] COMMAND [flags] [arguments]
  disgo help COMMAND

Commands:
`)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Connection flags (accepted before or after COMMAND; flag, else environment, else default):
  --redis URL         a standalone server: redis://[user:password@]host:port[/db],
                      or rediss://... for TLS ($DISGO_REDIS; default redis://127.0.0.1:6379)
  --cluster ADDRS     a Redis Cluster: host:port,host:port,... (some or all of its nodes);
                      each may be a redis:// or rediss:// URL carrying the user, password
                      and TLS for all ($DISGO_CLUSTER). Overrides --redis.
  --adapter NAME      the client library: goredis (default) or rueidis ($DISGO_ADAPTER)
  --namespace NS      the Locker namespace of the lock names ($DISGO_NAMESPACE; default none)
  --prefix P          the key prefix of the store ($DISGO_PREFIX; default disgo)
  --timeout D         bound on each store call, e.g. 5s ($DISGO_TIMEOUT; default 5s)
  --json              print JSON, one object per line, instead of tables

Lock names: NAME is the key a program passes to locker.Locker; with --namespace NS
the store sees NS:NAME, exactly as a Locker with Options.Namespace NS does.

Lock kinds: one NAME has a lock of each kind, each a lock of its own:
`+kindsHelp()+`list, inspect and watch show every kind that exists; inspect, watch and release
take --kind KIND (release frees the mutex, "lock", unless --kind says otherwise).

Exit statuses:
  0      success (run: the command exited 0)
  1      a check failed (release --force of a lock that is free, of the --kind given)
  64     usage error: bad flags or arguments, or a bad --redis URL
  69     the store is unreachable or failed
  75     run: the lock was not obtained within --wait
  77     the store refused the credentials or a command (ACL)
  78     the address is a Redis Cluster given as a standalone server (use --cluster)
  79     run: the lock was lost while the command ran; the command was stopped
  126    run: the command is not executable
  127    run: the command was not found
  128+N  run: the command was killed by signal N (or disgo was, while waiting)
  other  run: the command's own exit status

Examples:
  disgo --redis redis://localhost:6379 list
  disgo inspect --namespace jobs nightly
  disgo run --wait 10m --namespace jobs nightly -- /usr/local/bin/nightly.sh
  disgo watch --namespace jobs nightly
  disgo release --force --namespace jobs nightly
  disgo release --force --kind semaphore --namespace jobs pool

Run 'disgo help COMMAND' for the flags and output of a command.
`)
}

func (a *app) cmdUsage(w io.Writer, c *command) {
	fmt.Fprintf(w, "usage: %s\n\n%s\n", usageLine(c), strings.TrimSpace(c.help))
	fs := newFlagSet(c, new(opts))
	own := flag.NewFlagSet("", flag.ContinueOnError)
	if c.flags != nil {
		c.flags(own, new(opts))
	}
	var names []string
	own.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	if len(names) > 0 {
		fmt.Fprintf(w, "\nFlags:\n")
		sort.Strings(names)
		for _, n := range names {
			f := fs.Lookup(n)
			printFlag(w, f)
		}
	}
	fmt.Fprintf(w, "\nConnection flags: --redis, --cluster, --adapter, --namespace, --prefix, --timeout, --json\n(see 'disgo --help').\n")
}

func usageLine(c *command) string {
	return strings.TrimSpace("disgo " + c.name + " [flags] " + c.args)
}

func printFlag(w io.Writer, f *flag.Flag) {
	arg, usage := flag.UnquoteUsage(f)
	if arg != "" {
		arg = " " + arg
	}
	def := ""
	if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
		def = fmt.Sprintf(" (default %s)", f.DefValue)
	}
	fmt.Fprintf(w, "  --%s%s\n      %s%s\n", f.Name, arg, usage, def)
}
