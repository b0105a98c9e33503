package main

import (
	"io"

	"github.com/redis/rueidis"

	rueidisbackend "github.com/disgolock/disgo/backend/rueidis"
	"github.com/disgolock/disgo/locker/driver"
)

func init() {
	registry = append(registry, disgoImpls("rueidis", func(addr string) (driver.Backend, []io.Closer, error) {
		client, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}})
		if err != nil {
			return nil, nil, err
		}
		store, err := rueidisbackend.New(client, rueidisbackend.Options{})
		if err != nil {
			client.Close()
			return nil, nil, err
		}
		return store, []io.Closer{store, closerFunc(client.Close)}, nil
	})...)
}

// closerFunc adapts a Close method without a result to io.Closer.
type closerFunc func()

func (f closerFunc) Close() error { f(); return nil }
