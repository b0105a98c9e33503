// Package tlstest checks the README's TLS setup: both Redis adapters lock,
// hand over through pub/sub wake-ups, renew and force-release over TLS to
// a redis-server that accepts TLS only on the port they use.
package tlstest_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/disgolock/disgo/backend/goredis"
	rueidisbackend "github.com/disgolock/disgo/backend/rueidis"
	"github.com/disgolock/disgo/internal/redistest"
	"github.com/disgolock/disgo/locker"
	"github.com/disgolock/disgo/locker/driver"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// tlsServer starts a redis-server with a TLS port (its plain port serves
// only the harness's readiness check) and returns the TLS address and a
// client configuration that trusts the server's self-signed certificate.
func tlsServer(t *testing.T) (addr string, cfg *tls.Config) {
	t.Helper()
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "disgo tlstest"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	redistest.Start(t, redistest.WithArgs(
		"--tls-port", strconv.Itoa(port),
		"--tls-cert-file", certFile, "--tls-key-file", keyFile, "--tls-ca-cert-file", certFile,
		"--tls-auth-clients", "no",
	))
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
}

// exercise locks, hands over to a waiter of another Locker (a wake-up over
// the TLS pub/sub connection), renews and force-releases.
func exercise(t *testing.T, newStore func() driver.Backend) {
	ctx := context.Background()
	la, err := locker.New(newStore(), locker.Options[string]{RenewLease: 600 * time.Millisecond, FallbackInterval: time.Hour})
	require.NoError(t, err)
	defer la.Close()
	lb, err := locker.New(newStore(), locker.Options[string]{FallbackInterval: time.Hour})
	require.NoError(t, err)
	defer lb.Close()

	h, err := la.LockWithRenewal(ctx, "tls", 0)
	require.NoError(t, err)
	got := make(chan *locker.Lock[string], 1)
	go func() {
		w, err := lb.Lock(ctx, "tls", 30*time.Second, time.Minute)
		if err != nil {
			t.Error(err)
		}
		got <- w
	}()
	time.Sleep(1500 * time.Millisecond) // renewals go on over TLS
	require.NoError(t, h.Err(), "renewed over TLS")
	require.NoError(t, h.Release(ctx))
	// With FallbackInterval an hour, the waiter can only have been woken
	// by the release's message over the TLS pub/sub connection.
	var w *locker.Lock[string]
	select {
	case w = <-got:
	case <-time.After(20 * time.Second):
		t.Fatal("the waiter was not woken by the release over TLS")
	}
	require.NotNil(t, w)
	require.Greater(t, w.Fence(), h.Fence())
	require.NoError(t, la.ForceRelease(ctx, "tls"), "force release over TLS")
	require.ErrorIs(t, w.Release(ctx), locker.ErrNotHeld)
}

func TestGoRedisOverTLS(t *testing.T) {
	addr, cfg := tlsServer(t)
	exercise(t, func() driver.Backend {
		c := redis.NewClient(&redis.Options{Addr: addr, TLSConfig: cfg, ContextTimeoutEnabled: true})
		t.Cleanup(func() { _ = c.Close() })
		s, err := goredis.New(c, goredis.Options{})
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

func TestRueidisOverTLS(t *testing.T) {
	addr, cfg := tlsServer(t)
	exercise(t, func() driver.Backend {
		c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, TLSConfig: cfg})
		require.NoError(t, err)
		t.Cleanup(c.Close)
		s, err := rueidisbackend.New(c, rueidisbackend.Options{})
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}
