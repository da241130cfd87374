package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
)

func TestResolveAndNames(t *testing.T) {
	ctx := context.Background()
	db, err := Open(filepath.Join(t.TempDir(), "berth.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, r := range []Row{
		{ID: "abc123", Name: "web", ImageID: "sha256:1", Data: []byte(`{}`)},
		{ID: "abd456", Name: "abc123x", ImageID: "sha256:1", Data: []byte(`{}`)},
		{ID: "ffff00", Name: "db", ImageID: "sha256:2", Data: []byte(`{}`)},
	} {
		if err := db.Insert(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Insert(ctx, Row{ID: "0000", Name: "web", Data: []byte(`{}`)}); !errors.Is(err, ErrNameInUse) {
		t.Fatalf("duplicate name: got %v, want ErrNameInUse", err)
	}
	for ref, want := range map[string]string{"abc123": "abc123", "web": "abc123", "/web": "abc123", "abd": "abd456", "f": "ffff00", "abc123x": "abd456"} {
		r, err := db.Resolve(ctx, ref)
		if err != nil || r.ID != want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", ref, r.ID, err, want)
		}
	}
	if _, err := db.Resolve(ctx, "ab"); !errors.Is(err, ErrAmbiguous) {
		t.Errorf("Resolve(ab): got %v, want ErrAmbiguous", err)
	}
	if _, err := db.Resolve(ctx, "zz"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Resolve(zz): got %v, want ErrNotFound", err)
	}
	ids, err := db.UsingImage(ctx, "sha256:1")
	if err != nil || len(ids) != 2 {
		t.Errorf("UsingImage = %v, %v; want 2 ids", ids, err)
	}
	err = db.Update(ctx, "ffff00", func(r *Row) error { r.Name = "web"; return nil })
	if !errors.Is(err, ErrNameInUse) {
		t.Errorf("rename onto a taken name: got %v", err)
	}
	if err := db.Delete(ctx, "ffff00"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Get(ctx, "ffff00"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Delete: %v", err)
	}
}

// Concurrent read-modify-writes from separate connections (as separate
// processes have) lose no update, and of many creates of one name exactly
// one wins.
func TestConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "berth.db")
	db0, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db0.Close()
	if err := db0.Insert(ctx, Row{ID: "c", Name: "counter", Data: []byte("0")}); err != nil {
		t.Fatal(err)
	}
	const n = 16
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := 0
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db, err := Open(path)
			if err != nil {
				t.Error(err)
				return
			}
			defer db.Close()
			for range 10 {
				err := db.Update(ctx, "c", func(r *Row) error {
					v, _ := strconv.Atoi(string(r.Data))
					r.Data = []byte(strconv.Itoa(v + 1))
					return nil
				})
				if err != nil {
					t.Error(err)
				}
			}
			err = db.Insert(ctx, Row{ID: fmt.Sprint("id", i), Name: "same", Data: []byte("{}")})
			if err == nil {
				mu.Lock()
				won++
				mu.Unlock()
			} else if !errors.Is(err, ErrNameInUse) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	r, err := db0.Get(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	if string(r.Data) != strconv.Itoa(n*10) {
		t.Errorf("counter = %s, want %d", r.Data, n*10)
	}
	if won != 1 {
		t.Errorf("%d creates of one name succeeded, want 1", won)
	}
}

// TestIDRanges: concurrent reservations from separate connections (as
// separate berth processes have) never hand out overlapping blocks; a
// container keeps its blocks; Delete frees them with the record.
func TestIDRanges(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "berth.db")
	// lowest is a first-fit over [1000, ...) in blocks of 10.
	lowest := func(held HeldIDRanges) (IDRanges, error) {
		for start := uint32(1000); ; start += 10 {
			free := true
			for _, r := range held.UIDs {
				if start < r.Start+r.Size && r.Start < start+10 {
					free = false
				}
			}
			if free {
				return IDRanges{UIDs: []IDRange{{start, 10}}, GIDs: []IDRange{{start + 5000, 10}}}, nil
			}
		}
	}
	const n = 12
	got := make([]IDRanges, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			db, err := Open(path)
			if err != nil {
				errs[i] = err
				return
			}
			defer db.Close()
			id := "c" + strconv.Itoa(i)
			if errs[i] = db.Insert(ctx, Row{ID: id, Name: id, Data: []byte(`{}`)}); errs[i] == nil {
				got[i], errs[i] = db.ReserveIDRanges(ctx, id, lowest)
			}
		}(i)
	}
	wg.Wait()
	seen := map[uint32]bool{}
	for i := range got {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if seen[got[i].UIDs[0].Start] {
			t.Errorf("block %d handed out twice: %v", got[i].UIDs[0].Start, got)
		}
		seen[got[i].UIDs[0].Start] = true
	}
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	again, err := db.ReserveIDRanges(ctx, "c3", func(HeldIDRanges) (IDRanges, error) { return IDRanges{}, fmt.Errorf("picked again") })
	if err != nil || fmt.Sprint(again) != fmt.Sprint(got[3]) {
		t.Errorf("a second reservation for c3: %v %v, want its blocks %v", again, err, got[3])
	}
	// The holders are named to pick.
	db.Insert(ctx, Row{ID: "peek", Name: "peek", Data: []byte(`{}`)})
	db.ReserveIDRanges(ctx, "peek", func(h HeldIDRanges) (IDRanges, error) {
		if len(h.UIDs) != n || len(h.GIDs) != n || h.UIDs[0].Container == "" {
			t.Errorf("held: %+v", h)
		}
		return IDRanges{}, fmt.Errorf("only looking")
	})
	if err := db.Delete(ctx, "c3"); err != nil {
		t.Fatal(err)
	}
	if err := db.Insert(ctx, Row{ID: "new", Name: "new", Data: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if r, err := db.ReserveIDRanges(ctx, "new", lowest); err != nil || r.UIDs[0] != got[3].UIDs[0] {
		t.Errorf("after c3's removal the new block is %v %v, want c3's %v", r, err, got[3])
	}
}
