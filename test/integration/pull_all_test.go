package integration

import (
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/image/registrytest"
)

// pull -a pulls every tag of a repository, and refuses a name with a tag.
func TestPullAllTags(t *testing.T) {
	e := newEngine(t)
	reg := registrytest.Start(t, registrytest.Options{})
	img := featureImage(t)
	img.Push(t, reg, "multi", "v1")
	img.Push(t, reg, "multi", "v2")
	repo := reg.Addr + "/multi"
	out := e.run("pull", "-a", "-q", repo)
	if got := strings.Fields(out); len(got) != 2 || got[0] != repo+":v1" || got[1] != repo+":v2" {
		t.Fatalf("pull -a printed %q", out)
	}
	if got := strings.Fields(e.run("images", "--format", "{{.Repository}}:{{.Tag}}")); len(got) != 2 {
		t.Fatalf("after pull -a: %q", got)
	}
	if code, _, errOut := e.exitCode("pull", "-a", repo+":v1"); code != 1 || !strings.Contains(errOut, "tag can't be used with --all-tags/-a") {
		t.Fatalf("pull -a NAME:TAG: exit %d, %s", code, errOut)
	}
}
