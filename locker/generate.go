package locker

//go:generate go tool mockgen -destination=lockermock/lockermock.go -package=lockermock -typed github.com/disgolock/disgo/locker Backend,Queue,Notifier,Subscription,Renewer,Inspector
