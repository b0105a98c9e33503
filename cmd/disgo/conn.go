package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"

	goredisbackend "github.com/disgolock/disgo/backend/goredis"
	rueidisbackend "github.com/disgolock/disgo/backend/rueidis"
	"github.com/disgolock/disgo/internal/rediscore"
	"github.com/disgolock/disgo/locker"
	"github.com/disgolock/disgo/locker/driver"
)

// Defaults of the connection flags.
const (
	defaultRedis   = "redis://127.0.0.1:6379"
	defaultAdapter = "goredis"
	defaultTimeout = 5 * time.Second
)

// opts are the flags of one invocation: the connection flags, shared by
// every subcommand, and each subcommand's own.
type opts struct {
	redisURL  string
	cluster   string
	adapter   string
	namespace string
	prefix    string
	timeout   time.Duration
	json      bool
	set       map[string]bool // connection flags given on the command line

	// list
	match string
	// run
	wait    waitFlag
	lease   time.Duration
	fair    bool
	barging bool
	grace   time.Duration
	owner   string
	// inspect, release, watch
	kind string
	// release
	force bool
	// watch
	interval time.Duration
	count    int
}

// connFlags registers the connection flags on fs.
func (o *opts) connFlags(fs *flag.FlagSet) {
	fs.Func("redis", "`URL` of a standalone server (redis:// or rediss://)", o.setter("redis", &o.redisURL))
	fs.Func("cluster", "`ADDRS` of a Redis Cluster, comma-separated", o.setter("cluster", &o.cluster))
	fs.Func("adapter", "client library: goredis or rueidis", o.setter("adapter", &o.adapter))
	fs.Func("namespace", "Locker namespace `NS` of the lock names", o.setter("namespace", &o.namespace))
	fs.Func("prefix", "key `PREFIX` of the store", o.setter("prefix", &o.prefix))
	fs.Func("timeout", "bound `D` on each store call", func(s string) error {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return fmt.Errorf("want a positive duration such as 5s")
		}
		o.timeout = d
		o.mark("timeout")
		return nil
	})
	fs.BoolVar(&o.json, "json", o.json, "print JSON, one object per line")
}

func (o *opts) setter(name string, p *string) func(string) error {
	return func(s string) error {
		*p = s
		o.mark(name)
		return nil
	}
}

func (o *opts) mark(name string) {
	if o.set == nil {
		o.set = make(map[string]bool)
	}
	o.set[name] = true
}

// resolveEnv fills the connection options not given as flags from the
// environment, then from the defaults, and checks them.
func (o *opts) resolveEnv(getenv func(string) string) error {
	env := func(flagName, variable string, p *string, def string) {
		if o.set[flagName] {
			return
		}
		if v := getenv(variable); v != "" {
			*p = v
			return
		}
		*p = def
	}
	env("redis", "DISGO_REDIS", &o.redisURL, defaultRedis)
	env("cluster", "DISGO_CLUSTER", &o.cluster, "")
	env("adapter", "DISGO_ADAPTER", &o.adapter, defaultAdapter)
	env("namespace", "DISGO_NAMESPACE", &o.namespace, "")
	env("prefix", "DISGO_PREFIX", &o.prefix, rediscore.DefaultPrefix)
	if !o.set["timeout"] {
		o.timeout = defaultTimeout
		if v := getenv("DISGO_TIMEOUT"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return fmt.Errorf("DISGO_TIMEOUT=%q: want a positive duration such as 5s", v)
			}
			o.timeout = d
		}
	}
	if o.adapter != "goredis" && o.adapter != "rueidis" {
		return fmt.Errorf("--adapter %q: want goredis or rueidis", o.adapter)
	}
	if err := rediscore.ValidatePrefix(o.prefix); err != nil {
		return fmt.Errorf("--prefix: %v", err)
	}
	if strings.ContainsAny(o.namespace, "{}") {
		return fmt.Errorf("--namespace %q: must not contain '{' or '}'", o.namespace)
	}
	return nil
}

// target is where the store is, parsed from --redis or --cluster.
type target struct {
	addrs    []string
	cluster  bool
	user     string
	password string
	db       int
	tls      *tls.Config
	source   string // how it was given, for hints: "--redis", "DISGO_REDIS", ...
}

func (o *opts) source(flagName, variable string, getenv func(string) string) string {
	switch {
	case o.set[flagName]:
		return "--" + flagName
	case getenv(variable) != "":
		return variable
	}
	return "the default " + defaultRedis
}

// parseTarget reads the address of the store from the options.
func (o *opts) parseTarget(getenv func(string) string) (target, error) {
	if o.cluster != "" {
		t := target{cluster: true, source: o.source("cluster", "DISGO_CLUSTER", getenv)}
		for _, a := range strings.Split(o.cluster, ",") {
			a = strings.TrimSpace(a)
			if a == "" {
				continue
			}
			if !strings.Contains(a, "://") {
				if _, _, err := net.SplitHostPort(a); err != nil {
					return t, usagef("%s: %q is not host:port: %v", t.source, a, err)
				}
				t.addrs = append(t.addrs, a)
				continue
			}
			u, err := parseURL(a, t.source)
			if err != nil {
				return t, err
			}
			if u.DB != 0 {
				return t, usagef("%s: %q selects database %d; a Redis Cluster has database 0 only", t.source, redact(a), u.DB)
			}
			t.addrs = append(t.addrs, u.Addr)
			if t.user == "" && t.password == "" {
				t.user, t.password = u.Username, u.Password
			}
			if u.TLSConfig != nil {
				t.tls = u.TLSConfig
			}
		}
		if len(t.addrs) == 0 {
			return t, usagef("%s is empty: give host:port,host:port,...", t.source)
		}
		return t, nil
	}
	t := target{source: o.source("redis", "DISGO_REDIS", getenv)}
	u, err := parseURL(o.redisURL, t.source)
	if err != nil {
		return t, err
	}
	t.addrs = []string{u.Addr}
	t.user, t.password, t.db, t.tls = u.Username, u.Password, u.DB, u.TLSConfig
	return t, nil
}

// parseURL parses a redis:// or rediss:// URL; a bare host:port is taken
// as redis://host:port.
func parseURL(s, source string) (*redis.Options, error) {
	if !strings.Contains(s, "://") {
		s = "redis://" + s
	}
	if u, err := url.Parse(s); err == nil && u.Scheme != "redis" && u.Scheme != "rediss" {
		return nil, usagef("%s: scheme %q: want redis:// (plain) or rediss:// (TLS), as in redis://user:password@host:6379/0", source, u.Scheme)
	}
	opt, err := redis.ParseURL(s)
	if err != nil {
		return nil, usagef("%s: bad URL %q: %v (want redis[s]://[user:password@]host:port[/db])", source, redact(s), err)
	}
	return opt, nil
}

// redact hides the password of a URL.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// quietLogger drops go-redis' own log lines (dial retries and the like):
// disgo reports the error that ends an operation, once, with a hint.
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

// session is an open connection to the store: the lock store of the chosen
// adapter and the admin client for the commands the lock stores do not
// send (SCAN, INFO).
type session struct {
	o      *opts
	t      target
	store  driver.Backend
	admin  admin
	layout rediscore.Layout
	close  []func()
}

// Close closes the store and the clients.
func (s *session) Close() {
	for i := len(s.close) - 1; i >= 0; i-- {
		s.close[i]()
	}
}

// call returns a context bounded by the request timeout.
func (s *session) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.o.timeout)
}

// connect opens a session and checks that the store answers, and that a
// standalone address is not a Cluster node.
func (a *app) connect(ctx context.Context, o *opts) (*session, error) {
	t, err := o.parseTarget(a.getenv)
	if err != nil {
		return nil, err
	}
	s := &session{o: o, t: t, layout: rediscore.Layout{Prefix: o.prefix}}
	fail := func(err error) (*session, error) {
		s.Close()
		return nil, s.diagnose(err)
	}
	switch o.adapter {
	case "goredis":
		var uc redis.UniversalClient
		if t.cluster {
			uc = redis.NewClusterClient(&redis.ClusterOptions{
				Addrs: t.addrs, Username: t.user, Password: t.password, TLSConfig: t.tls,
				DialTimeout: o.timeout, ContextTimeoutEnabled: true,
			})
		} else {
			uc = redis.NewClient(&redis.Options{
				Addr: t.addrs[0], Username: t.user, Password: t.password, DB: t.db, TLSConfig: t.tls,
				DialTimeout: o.timeout, ContextTimeoutEnabled: true,
			})
		}
		s.close = append(s.close, func() { _ = uc.Close() })
		s.admin = goredisAdmin{uc}
		st, err := goredisbackend.New(uc, goredisbackend.Options{Prefix: o.prefix})
		if err != nil {
			return fail(err)
		}
		s.close = append(s.close, func() { _ = st.Close() })
		s.store = st
	case "rueidis":
		c, err := rueidis.NewClient(rueidis.ClientOption{
			InitAddress: t.addrs, Username: t.user, Password: t.password, SelectDB: t.db, TLSConfig: t.tls,
			ForceSingleClient: !t.cluster, DisableCache: true,
			Dialer: net.Dialer{Timeout: o.timeout},
		})
		if err != nil {
			return fail(err)
		}
		s.close = append(s.close, c.Close)
		s.admin = rueidisAdmin{c}
		st, err := rueidisbackend.New(c, rueidisbackend.Options{Prefix: o.prefix})
		if err != nil {
			return fail(err)
		}
		s.close = append(s.close, func() { _ = st.Close() })
		s.store = st
	}
	cctx, cancel := s.call(ctx)
	defer cancel()
	if err := s.admin.Ping(cctx); err != nil {
		return fail(err)
	}
	if !t.cluster {
		// INFO is not in the least-privilege ACL: a refusal says nothing.
		if on, err := s.admin.ClusterEnabled(cctx); err == nil && on {
			return fail(errClusterAsStandalone)
		}
	}
	return s, nil
}

var errClusterAsStandalone = errors.New("INFO reports cluster_enabled:1")

// locker returns a Locker on the session's store with the namespace and mode
// of the options, for naming keys and for run.
func (s *session) locker(mode locker.Mode, lease time.Duration) (*locker.Locker[string], error) {
	return locker.New[string](s.store, locker.Options[string]{
		Namespace: s.o.namespace, Mode: mode, RenewLease: lease, RequestTimeout: s.o.timeout,
	})
}

// lockName returns the store's name of key under the session's namespace.
func (s *session) lockName(key string) (string, error) {
	l, err := s.locker(locker.Fair, 0)
	if err != nil {
		return "", usagef("%v", err)
	}
	defer l.Close()
	name, err := l.Name(key)
	if err != nil {
		return "", usagef("lock name %q: %v", key, err)
	}
	return name, nil
}
