package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
)

// benchTar is a synthetic layer: 20k small files (0.5-16 KiB) in 400
// directories, a few symlinks and hard links, and 8 files of 16 MiB.
func benchTar(b *testing.B) ([]byte, int) {
	rng := rand.New(rand.NewPCG(1, 2))
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	content := make([]byte, 16<<20)
	for i := range content {
		content[i] = byte(rng.Uint32())
	}
	n := 0
	add := func(h *tar.Header, data []byte) {
		h.Format = tar.FormatPAX
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(data))
		}
		if err := tw.WriteHeader(h); err != nil {
			b.Fatal(err)
		}
		tw.Write(data)
		n++
	}
	for d := range 400 {
		dn := fmt.Sprintf("usr/lib/python3/pkg%03d/", d)
		add(&tar.Header{Typeflag: tar.TypeDir, Name: dn, Mode: 0o755}, nil)
		for f := range 50 {
			size := 512 + rng.IntN(16<<10)
			add(&tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprintf("%smod%02d.py", dn, f), Mode: 0o644, Uid: 0, Gid: 0}, content[:size])
		}
		add(&tar.Header{Typeflag: tar.TypeSymlink, Name: dn + "link", Linkname: "mod00.py"}, nil)
		add(&tar.Header{Typeflag: tar.TypeLink, Name: dn + "hard", Linkname: dn + "mod01.py"}, nil)
	}
	add(&tar.Header{Typeflag: tar.TypeDir, Name: "usr/local/go/", Mode: 0o755}, nil)
	for i := range 8 {
		add(&tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprintf("usr/local/go/big%d", i), Mode: 0o755}, content)
	}
	tw.Close()
	return buf.Bytes(), n
}

func BenchmarkApply(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("skipping: applying layers needs root")
	}
	data, entries := benchTar(b)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		root := b.TempDir()
		b.StartTimer()
		st, err := Apply(context.Background(), root, bytes.NewReader(data), Options{NoSync: true})
		if err != nil {
			b.Fatal(err)
		}
		if st.Entries != entries {
			b.Fatalf("applied %d entries, want %d", st.Entries, entries)
		}
		b.StopTimer()
		os.RemoveAll(root)
		b.StartTimer()
	}
	b.ReportMetric(float64(entries)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}
