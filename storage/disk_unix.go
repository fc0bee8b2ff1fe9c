//go:build linux || darwin

package storage

import (
	"os"
	"syscall"
)

// freeSpace returns the bytes available to an unprivileged writer on the
// file system of dir (statfs f_bavail × f_bsize): the root-reserved blocks
// are not ours to fill.
func freeSpace(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// allocatedBytes returns the bytes a file takes on disk (its blocks), not
// its length: Badger's files are long and mostly holes while they fill.
func allocatedBytes(fi os.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Blocks * 512 // st_blocks counts 512-byte units whatever the block size
	}
	return fi.Size()
}
