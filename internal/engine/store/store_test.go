package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
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

// TestNamespaces: names and prefixes resolve and lists list within the
// DB's namespace; a full ID reaches any record; names are unique across
// namespaces, and the error says where the name is taken.
func TestNamespaces(t *testing.T) {
	d, err := Open(filepath.Join(t.TempDir(), "berth.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx := context.Background()
	k8s := d.InNamespace("k8s")
	idA, idK := strings.Repeat("a", 64), strings.Repeat("b", 64)
	if err := d.Insert(ctx, Row{ID: idA, Name: "web", ImageID: "i", Data: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Insert(ctx, Row{ID: idK, Name: "k8s_pod", ImageID: "i", Data: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	if rows, _ := d.List(ctx); len(rows) != 1 || rows[0].ID != idA {
		t.Errorf("default List: %+v", rows)
	}
	if rows, _ := k8s.List(ctx); len(rows) != 1 || rows[0].ID != idK || rows[0].Namespace != "k8s" {
		t.Errorf("k8s List: %+v", rows)
	}
	if rows, _ := d.ListAll(ctx); len(rows) != 2 {
		t.Errorf("ListAll: %d rows", len(rows))
	}
	for _, ref := range []string{"k8s_pod", "bbb", idK} {
		if _, err := d.Resolve(ctx, ref); !errors.Is(err, ErrNotFound) {
			t.Errorf("default Resolve(%s) of a k8s record: %v", ref, err)
		}
		if r, err := k8s.Resolve(ctx, ref); err != nil || r.ID != idK {
			t.Errorf("k8s Resolve(%s): %+v %v", ref, r, err)
		}
	}
	if r, err := d.Get(ctx, idK); err != nil || r.Namespace != "k8s" {
		t.Errorf("Get by full ID across namespaces: %+v %v", r, err)
	}
	err = d.Insert(ctx, Row{ID: strings.Repeat("c", 64), Name: "k8s_pod", ImageID: "i", Data: []byte("{}")})
	if !errors.Is(err, ErrNameInUse) || !strings.Contains(err.Error(), `namespace "k8s"`) {
		t.Errorf("a name taken in another namespace: %v", err)
	}
}

// TestMigrateToNamespaces: a store of schema 2 (no namespace column)
// gets the column, its records in the default namespace.
func TestMigrateToNamespaces(t *testing.T) {
	path := filepath.Join(t.TempDir(), "berth.db")
	old, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE TABLE containers (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, image_id TEXT NOT NULL, data TEXT NOT NULL)`,
		`INSERT INTO containers VALUES ('` + strings.Repeat("a", 64) + `', 'old', 'i', '{}')`,
		`PRAGMA user_version = 2`,
	} {
		if _, err := old.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	old.Close()
	d, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	r, err := d.Resolve(context.Background(), "old")
	if err != nil || r.Namespace != "" {
		t.Fatalf("the old record after the migration: %+v %v", r, err)
	}
	if rows, _ := d.InNamespace("k8s").List(context.Background()); len(rows) != 0 {
		t.Errorf("the old record is in k8s: %+v", rows)
	}
}

// TestPodsTable: pods are rows of their own table: their names, IDs and
// lists apart from the containers', with the same namespace rules.
func TestPodsTable(t *testing.T) {
	d, err := Open(filepath.Join(t.TempDir(), "berth.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx := context.Background()
	pods := d.Pods()
	if err := pods.Insert(ctx, Row{ID: "aa11", Name: "web", Data: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	// A container may have the pod's name: another table.
	if err := d.Insert(ctx, Row{ID: "bb22", Name: "web", Data: []byte(`{}`)}); err != nil {
		t.Fatalf("a container named as a pod: %v", err)
	}
	if err := pods.Insert(ctx, Row{ID: "cc33", Name: "web", Data: []byte(`{}`)}); !errors.Is(err, ErrNameInUse) || !strings.Contains(err.Error(), "pod name") {
		t.Errorf("a second pod named web: %v", err)
	}
	if err := pods.InNamespace("k8s").Insert(ctx, Row{ID: "dd44", Name: "web", Data: []byte(`{}`)}); !errors.Is(err, ErrNameInUse) || !strings.Contains(err.Error(), `namespace ""`) {
		t.Errorf("a pod named web in another namespace: %v", err)
	}
	if r, err := pods.Resolve(ctx, "aa"); err != nil || r.ID != "aa11" {
		t.Errorf("resolve a pod by prefix: %+v %v", r, err)
	}
	if _, err := pods.Resolve(ctx, "bb22"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "no such pod") {
		t.Errorf("a container's ID resolved as a pod: %v", err)
	}
	if rows, _ := pods.List(ctx); len(rows) != 1 || rows[0].ID != "aa11" {
		t.Errorf("pods listed: %+v", rows)
	}
	if rows, _ := d.List(ctx); len(rows) != 1 || rows[0].ID != "bb22" {
		t.Errorf("containers listed: %+v", rows)
	}
	if err := pods.Update(ctx, "aa11", func(r *Row) error { r.Data = []byte(`{"x":1}`); return nil }); err != nil {
		t.Fatal(err)
	}
	if r, _ := pods.Get(ctx, "aa11"); string(r.Data) != `{"x":1}` {
		t.Errorf("updated pod: %s", r.Data)
	}
	if err := pods.Delete(ctx, "aa11"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Get(ctx, "bb22"); err != nil {
		t.Errorf("deleting a pod took the container: %v", err)
	}
}
