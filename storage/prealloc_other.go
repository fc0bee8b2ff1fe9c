//go:build !linux

package storage

import (
	"errors"
	"os"
)

// preallocate is not available here: the caller writes zeros.
func preallocate(*os.File, int64) error { return errors.ErrUnsupported }
