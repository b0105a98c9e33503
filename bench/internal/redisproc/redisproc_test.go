package redisproc

import (
	"context"
	"net"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStartServesAndStopRemovesEverything(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Start(ctx)
	require.NoError(t, err)
	defer s.Stop()

	host, port, err := net.SplitHostPort(s.Addr)
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1", host)
	assert.NotEqual(t, "6379", port)
	require.NoError(t, ping(s.Addr))
	dir := s.dir
	require.DirExists(t, dir)

	s.Stop()
	assert.Error(t, ping(s.Addr), "the server still answers after Stop")
	_, err = os.Stat(dir)
	assert.True(t, os.IsNotExist(err), "the temporary folder %s is left behind", dir)
	s.Stop() // a second Stop does nothing
}

func TestStartHonoursCancelledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Start(ctx)
	assert.ErrorIs(t, err, context.Canceled)
}
