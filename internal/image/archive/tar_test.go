package archive

import (
	"archive/tar"
	"bytes"
	"testing"
)

// te is one tar entry for test streams; data is the body of regular files.
type te struct {
	h    tar.Header
	data string
}

func reg(name, data string) te {
	return te{h: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644}, data: data}
}
func dir(name string) te {
	return te{h: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755}}
}
func sym(name, target string) te {
	return te{h: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}}
}
func hard(name, target string) te {
	return te{h: tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target}}
}

func tarBytes(t testing.TB, ents ...te) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range ents {
		h := e.h
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.data))
		}
		if h.Format == tar.FormatUnknown {
			h.Format = tar.FormatPAX // keeps sub-second times
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("WriteHeader %q: %v", h.Name, err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(e.data)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
