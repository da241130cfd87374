package reference_test

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/berth-dev/berth/internal/image/reference"
)

func ExampleParse() {
	for _, s := range []string{"busybox", "user/app:1", "localhost:5000/a/b:tag"} {
		r, err := reference.Parse(s)
		if err != nil {
			panic(err)
		}
		fmt.Println(r.Registry(), r.Repository(), r.Tag(), "|", r, "|", r.Familiar(), r.IsLoopbackRegistry())
	}
	_, err := reference.Parse("Busybox")
	fmt.Println(err, errors.Is(err, reference.ErrInvalid))
	// Output:
	// docker.io library/busybox latest | docker.io/library/busybox:latest | busybox:latest false
	// docker.io user/app 1 | docker.io/user/app:1 | user/app:1 false
	// localhost:5000 a/b tag | localhost:5000/a/b:tag | localhost:5000/a/b:tag true
	// reference "Busybox": repository name must be lowercase (try "busybox") true
}

func ExampleDigest_Verifier() {
	blob := "hello\n"
	want := reference.FromBytes(reference.SHA256, []byte(blob))

	v := want.Verifier()
	if _, err := io.Copy(v, strings.NewReader(blob)); err != nil {
		panic(err)
	}
	fmt.Println(want, v.Verified())
	// Output:
	// sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03 true
}
