package storage

import (
	"os"
	"syscall"
)

// preallocate allocates n bytes of blocks to f without writing them.
func preallocate(f *os.File, n int64) error {
	return syscall.Fallocate(int(f.Fd()), 0, 0, n)
}
