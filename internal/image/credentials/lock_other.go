//go:build !(linux || freebsd || darwin || dragonfly || netbsd || openbsd)

package credentials

import (
	"context"
	"sync"
)

// lockMu serialises rewrites within this process where flock(2) is missing;
// other processes are not excluded there.
var lockMu sync.Mutex

func lockFile(ctx context.Context, _ string) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	lockMu.Lock()
	return lockMu.Unlock, nil
}
