//go:build !(linux || freebsd || darwin || dragonfly || netbsd || openbsd)

package content

import (
	"errors"
	"os"
)

// tryFlock: ingest locks need flock(2), which this platform lacks.
func tryFlock(*os.File) error { return errors.ErrUnsupported }
