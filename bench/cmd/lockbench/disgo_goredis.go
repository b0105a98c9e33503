package main

import (
	"io"

	"github.com/disgolock/disgo/backend/goredis"
	"github.com/disgolock/disgo/locker/driver"
)

func init() {
	registry = append(registry, disgoImpls("goredis", func(addr string) (driver.Backend, []io.Closer, error) {
		client := newGoRedis(addr)
		store, err := goredis.New(client, goredis.Options{})
		if err != nil {
			_ = client.Close()
			return nil, nil, err
		}
		return store, []io.Closer{store, client}, nil
	})...)
}
