// Package lockermock holds generated gomock doubles of the driver contracts
// (package locker/driver), for the facade's own unit tests. It is internal:
// backend authors test against package conformance instead. Regenerate with
// `go generate ./internal/lockermock/`.
package lockermock

//go:generate go tool mockgen -destination=lockermock.go -package=lockermock -typed github.com/disgolock/disgo/locker/driver Backend,Queue,Notifier,Subscription,Renewer,Inspector,BatchExtender
