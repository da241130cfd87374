//go:build !unix

package lockfile

import "errors"

// TryLock is not supported without flock(2).
func TryLock(string, bool) (func(), error) {
	return nil, errors.ErrUnsupported
}
