package userns

import (
	"testing"
)

func TestParseSubIDs(t *testing.T) {
	data := []byte("# comment\nalice:100000:65536\n\nberth:1048576:67108864\nbroken:1:x\n1001:231072:65536\nbig:4294967295:2\nzero:5:0\nberth:200000000:10")
	got := ParseSubIDs(data)
	want := []Entry{
		{"alice", Range{100000, 65536}},
		{"berth", Range{1048576, 67108864}},
		{"1001", Range{231072, 65536}},
		{"berth", Range{200000000, 10}},
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d: got %v, want %v", i, got[i], want[i])
		}
	}
	owned := Owned(got, "berth", "999")
	if len(owned) != 2 || owned[0].Start != 1048576 || owned[1].Start != 200000000 {
		t.Errorf("Owned: %v", owned)
	}
	if l := (Entry{"berth", Range{5, 6}}).Line(); l != "berth:5:6" {
		t.Errorf("Line: %q", l)
	}
}

func TestFreeRange(t *testing.T) {
	r, err := FreeRange(EntrySize)
	if err != nil || r.Start != 131072 || r.Size != EntrySize {
		t.Errorf("empty files: %v %v", r, err)
	}
	uids := ParseSubIDs([]byte("alice:100000:65536\nbob:165536:65536\n"))
	gids := ParseSubIDs([]byte("alice:100000:65536\ncarol:300000:65536\n"))
	r, err = FreeRange(EntrySize, uids, gids)
	// After the last entry of either file (365536), aligned to 65536.
	if err != nil || r.Start != 393216 {
		t.Errorf("after entries: %v %v", r, err)
	}
	// No room above the top entry: a hole below it.
	top := ParseSubIDs([]byte("x:4000000000:294967295\n"))
	r, err = FreeRange(EntrySize, top)
	if err != nil || r.Start != 131072 {
		t.Errorf("hole below: %v %v", r, err)
	}
	full := ParseSubIDs([]byte("x:100000:4294867295\n"))
	if _, err := FreeRange(EntrySize, full); err == nil {
		t.Error("a full ID space gave a range")
	}
}

func TestAllocate(t *testing.T) {
	pool := []Range{{1000000, 3 * 65536}}
	var taken []Range
	var got []Range
	for i := 0; i < 3; i++ {
		r, err := Allocate(pool, taken, 65536)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
		taken = append(taken, r)
	}
	if got[0].Start != 1000000 || got[1].Start != 1065536 || got[2].Start != 1131072 {
		t.Errorf("allocations: %v", got)
	}
	if _, err := Allocate(pool, taken, 1); err != ErrExhausted {
		t.Errorf("a full pool: %v", err)
	}
	// Freeing the middle block makes it the next one handed out.
	taken = []Range{got[0], got[2]}
	if r, err := Allocate(pool, taken, 65536); err != nil || r != got[1] {
		t.Errorf("after a free: %v %v", r, err)
	}
	// A smaller block fits in what is left; a bigger one does not.
	taken = []Range{{1000000, 100}}
	if r, _ := Allocate(pool, taken, 100); r.Start != 1000100 {
		t.Errorf("after a small block: %v", r)
	}
	if _, err := Allocate(pool, nil, 4*65536); err != ErrExhausted {
		t.Errorf("too big: %v", err)
	}
	// Ranges of several pool entries.
	pool = []Range{{500, 10}, {100, 10}}
	if r, _ := Allocate(pool, []Range{{100, 5}}, 10); r.Start != 500 {
		t.Errorf("second pool range: %v", r)
	}
}

func TestParseMode(t *testing.T) {
	for _, c := range []struct {
		in     string
		size   uint32
		ok     bool
		hasErr bool
	}{
		{"auto", DefaultSize, true, false},
		{"auto:size=1024", 1024, true, false},
		{"auto:size=0", 0, true, true},
		{"auto:size=x", 0, true, true},
		{"auto:uidmapping=0:1:2", 0, true, true},
		{"automatic", 0, false, false},
		{"host", 0, false, false},
		{"", 0, false, false},
	} {
		size, ok, err := ParseMode(c.in)
		if ok != c.ok || (err != nil) != c.hasErr || !c.hasErr && size != c.size {
			t.Errorf("ParseMode(%q) = %d %v %v", c.in, size, ok, err)
		}
	}
}
