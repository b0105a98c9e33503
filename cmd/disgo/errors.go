package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"syscall"

	"github.com/disgolock/disgo/locker"
)

// aclHint points to the documented least-privilege setup.
const aclHint = "the Redis user lacks a command, key or channel disgo needs; grant the rules in the README section \"Key and channel layout\" (Least-privilege ACL), for your --prefix"

// diagnose turns a store error into an *exitErr that names the cause and
// suggests the fix. Usage errors and errors diagnosed already pass through.
func (s *session) diagnose(err error) error {
	if err == nil {
		return nil
	}
	var ue *usageErr
	var ex *exitErr
	if errors.As(err, &ue) || errors.As(err, &ex) {
		return err
	}
	where := strings.Join(s.t.addrs, ",")
	src := s.t.source
	flagHint := "check --redis or DISGO_REDIS"
	if s.t.cluster {
		flagHint = "check --cluster or DISGO_CLUSTER"
	}
	msg := err.Error()
	has := func(prefixes ...string) bool {
		for _, p := range prefixes {
			if strings.Contains(msg, p) {
				return true
			}
		}
		return false
	}
	var dnsErr *net.DNSError
	var certErr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var recErr tls.RecordHeaderError
	switch {
	case errors.Is(err, errClusterAsStandalone) || has("MOVED ", "CROSSSLOT", "CLUSTERDOWN", "ASK "):
		return &exitErr{code: exitConfig,
			msg:  "the server at " + where + " (" + src + ") is a Redis Cluster node, given as a standalone server",
			hint: "use --cluster " + where + " (or DISGO_CLUSTER) instead of --redis"}
	case has("NOPERM"):
		return &exitErr{code: exitNoPerm, msg: "permission denied by the Redis ACL: " + oneLine(msg), hint: aclHint}
	case has("WRONGPASS", "NOAUTH", "invalid username-password", "AUTH <password> called without"):
		return &exitErr{code: exitNoPerm, msg: "authentication failed at " + where + ": " + oneLine(msg),
			hint: "give the user and password in the URL, redis://user:password@host:port (" + flagHint + ")"}
	case errors.As(err, &certErr) || errors.As(err, &unknownAuth) || errors.As(err, &hostErr):
		return &exitErr{code: exitUnavailable, msg: "TLS: the certificate of " + where + " was not accepted: " + oneLine(msg),
			hint: "rediss:// verifies the server certificate against the system trust store: add the server's CA there, and connect by the name the certificate is for"}
	case errors.As(err, &recErr) || has("first record does not look like a TLS handshake"):
		return &exitErr{code: exitUnavailable, msg: "TLS handshake with " + where + " failed: the server does not speak TLS",
			hint: "use redis:// instead of rediss:// (" + flagHint + ")"}
	case errors.As(err, &dnsErr):
		return &exitErr{code: exitUnavailable, msg: "cannot resolve the Redis host of " + where + " (" + src + "): " + oneLine(msg), hint: flagHint}
	case errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) ||
		has("connection refused", "no route to host", "i/o timeout", "dial tcp", "connect:"):
		return &exitErr{code: exitUnavailable, msg: "cannot reach Redis at " + where + " (" + src + "): " + oneLine(msg),
			hint: "is redis-server running there? " + flagHint}
	case errors.Is(err, context.DeadlineExceeded):
		return &exitErr{code: exitUnavailable, msg: "Redis at " + where + " did not answer within --timeout " + s.o.timeout.String() + ": " + oneLine(msg),
			hint: "the server is slow or unreachable; " + flagHint + ", or raise --timeout"}
	case errors.Is(err, locker.ErrInvalidArgument):
		return &usageErr{err}
	case has("unknown command", "ERR unknown"):
		return &exitErr{code: exitUnavailable, msg: "the server does not know a command disgo sends: " + oneLine(msg),
			hint: "disgo needs Redis 7 or later (sharded pub/sub); check the server version"}
	}
	return &exitErr{code: exitUnavailable, msg: "the store failed: " + oneLine(msg)}
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}
