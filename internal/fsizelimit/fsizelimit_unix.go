//go:build unix

package fsizelimit

import (
	"os/signal"
	"syscall"
)

const supported = true

func apply(limit int64) error {
	signal.Ignore(syscall.SIGXFSZ)
	return syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: uint64(limit), Max: uint64(limit)})
}
