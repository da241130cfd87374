package archive

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// rawBlock builds one ustar header block by hand (archive/tar's Writer
// drops GNU.sparse.* PAX records, so sparse entries are hand-made).
func rawBlock(name string, typ byte, size int) []byte {
	b := make([]byte, 512)
	copy(b[0:100], name)
	copy(b[100:108], "0000644\x00")
	copy(b[108:116], "0000000\x00")
	copy(b[116:124], "0000000\x00")
	copy(b[124:136], fmt.Sprintf("%011o\x00", size))
	copy(b[136:148], "00000000000\x00")
	b[156] = typ
	copy(b[257:265], "ustar\x0000")
	copy(b[148:156], "        ")
	sum := 0
	for _, c := range b {
		sum += int(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

func pad(b []byte) []byte {
	if r := len(b) % 512; r != 0 {
		b = append(b, make([]byte, 512-r)...)
	}
	return b
}

func paxRecord(k, v string) string {
	n := len(k) + len(v) + 3
	for {
		l := len(strconv.Itoa(n)) + len(k) + len(v) + 3
		if l == n {
			return fmt.Sprintf("%d %s=%s\n", n, k, v)
		}
		n = l
	}
}

// sparseTar builds a GNU PAX 0.1 sparse entry: 5 data bytes at offset
// 1 MiB+3, logical size size.
func sparseTar(t *testing.T, name string, size int64) []byte {
	recs := paxRecord("GNU.sparse.map", "1048579,5") + paxRecord("GNU.sparse.numblocks", "1") +
		paxRecord("GNU.sparse.size", strconv.FormatInt(size, 10)) + paxRecord("GNU.sparse.name", name)
	var out []byte
	out = append(out, rawBlock("PaxHeaders/"+name, 'x', len(recs))...)
	out = append(out, pad([]byte(recs))...)
	out = append(out, rawBlock(name, '0', 5)...)
	out = append(out, pad([]byte("hello"))...)
	return append(out, make([]byte, 1024)...)
}

func TestSparse(t *testing.T) {
	requireRoot(t)
	s := newSandbox(t)
	b := sparseTar(t, "sp", 4<<20)
	st, err := applyBytes(t, s.root, b, Options{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := os.ReadFile(filepath.Join(s.root, "sp"))
	if err != nil || len(c) != 4<<20 || string(c[1048579:1048584]) != "hello" || c[0] != 0 || c[len(c)-1] != 0 {
		t.Fatalf("sparse content wrong: len %d err %v", len(c), err)
	}
	if fs := lstat(t, filepath.Join(s.root, "sp")); fs.Blocks*512 >= 4<<20 {
		t.Errorf("sparse file not written sparsely: %d bytes allocated", fs.Blocks*512)
	}
	if st.FileBytes >= 4<<20 {
		t.Errorf("FileBytes %d counts holes", st.FileBytes)
	}
	if _, err := applyBytes(t, s.root, sparseTar(t, "huge", 1<<50), Options{}); err == nil || !strings.Contains(err.Error(), "sparse") {
		t.Errorf("huge sparse file: err = %v", err)
	}
	s.check(t)
}
