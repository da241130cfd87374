package content

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

// Writers for one ref that end in every way (Close keeps the ingest,
// Abort and a failed Commit remove it), racing with CleanIngests, which
// removes what nobody holds: never two holders at once, and no errors
// other than ErrLocked. This exercises the check that a locked ingest
// directory is still the one at its path.
func TestIngestLockStress(t *testing.T) {
	s := newStore(t)
	iters := 300
	if testing.Short() {
		iters = 50
	}
	var holders, acquired atomic.Int32
	var wg sync.WaitGroup
	stop, cleanerDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(cleanerDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := s.CleanIngests(0); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	want := sha256Of([]byte("xy"))
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range iters {
				w, err := s.Writer(context.Background(), "contended", want, 2)
				if errors.Is(err, ErrLocked) {
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				if n := holders.Add(1); n != 1 {
					t.Errorf("%d holders of one ingest", n)
				}
				acquired.Add(1)
				if w.Offset() < 2 {
					if _, err := w.Write([]byte("x")); err != nil {
						t.Error(err)
					}
				}
				holders.Add(-1)
				switch (g + i) % 3 {
				case 0:
					err = w.Close()
				case 1:
					err = w.Abort()
				case 2:
					// "x" or "xx": never the promised "xy".
					err = w.Commit(context.Background())
					if errors.Is(err, ErrSizeMismatch) || errors.Is(err, ErrDigestMismatch) {
						err = nil
					}
				}
				if err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-cleanerDone
	if acquired.Load() == 0 {
		t.Fatal("no Writer ever got the ingest")
	}
	t.Logf("%d acquisitions", acquired.Load())
	if _, err := s.Info(want); !errors.Is(err, ErrNotFound) {
		t.Errorf("Info: %v", err)
	}
}
