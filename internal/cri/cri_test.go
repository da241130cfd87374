//go:build linux

package cri

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"testing"

	"github.com/berth-dev/berth/internal/engine/store"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/image/remote"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestImageUser(t *testing.T) {
	for _, c := range []struct {
		user string
		uid  int64 // -1: none
		name string
	}{
		{"", -1, ""}, {"0", 0, ""}, {"1000:1000", 1000, ""}, {"nobody", -1, "nobody"}, {"app:staff", -1, "app"}, {":5", -1, ""},
	} {
		uid, name := imageUser(c.user)
		got := int64(-1)
		if uid != nil {
			got = uid.Value
		}
		if got != c.uid || name != c.name {
			t.Errorf("imageUser(%q) = %d %q, want %d %q", c.user, got, name, c.uid, c.name)
		}
	}
}

func TestGRPCError(t *testing.T) {
	for _, c := range []struct {
		err  error
		code codes.Code
	}{
		{fmt.Errorf("pull x: %w", image.ErrNotFound), codes.NotFound},
		{fmt.Errorf("resolve: %w", remote.ErrNotFound), codes.NotFound},
		// A container or pod removed between the kubelet's list and its
		// status call: the kubelet skips only NotFound.
		{store.NotFound("no such container: %s", "abc"), codes.NotFound},
		{fmt.Errorf("resolve: %w", remote.ErrUnauthorized), codes.PermissionDenied},
		{fmt.Errorf("resolve: %w", remote.ErrUnavailable), codes.Unavailable},
		{fmt.Errorf("rm: %w", image.ErrInUse), codes.FailedPrecondition},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), codes.DeadlineExceeded},
		{status.Error(codes.Aborted, "kept"), codes.Aborted},
		{errors.New("other"), codes.Unknown},
	} {
		if got := status.Code(grpcError(c.err)); got != c.code {
			t.Errorf("grpcError(%v) = %v, want %v", c.err, got, c.code)
		}
	}
	if grpcError(nil) != nil {
		t.Error("grpcError(nil) is not nil")
	}
}

func TestRequestCredentials(t *testing.T) {
	fallback := staticCreds{"fb", "fbpass"}
	creds := remote.RequestCredentials{Fallback: fallback}
	get := func(ctx context.Context, registry string) string {
		u, p, err := creds.Get(ctx, registry)
		if err != nil {
			t.Fatal(err)
		}
		return u + ":" + p
	}
	must := func(a *runtimeapi.AuthConfig) context.Context {
		ctx, err := withAuth(context.Background(), a)
		if err != nil {
			t.Fatalf("withAuth(%v): %v", a, err)
		}
		return ctx
	}
	if got := get(context.Background(), "r.example"); got != "fb:fbpass" {
		t.Errorf("no request auth: %s", got)
	}
	if got := get(must(&runtimeapi.AuthConfig{Username: "u", Password: "p"}), "r.example"); got != "u:p" {
		t.Errorf("username/password for any registry: %s", got)
	}
	ctx := must(&runtimeapi.AuthConfig{Username: "u", Password: "p", ServerAddress: "https://r.example/v1/"})
	if got := get(ctx, "r.example"); got != "u:p" {
		t.Errorf("a matching server address: %s", got)
	}
	if got := get(ctx, "other.example"); got != "fb:fbpass" {
		t.Errorf("another registry gets the request's credentials: %s", got)
	}
	if got := get(must(&runtimeapi.AuthConfig{Auth: base64.StdEncoding.EncodeToString([]byte("a:b:c"))}), "r"); got != "a:b:c" {
		t.Errorf("auth (base64 user:password, a colon in the password): %s", got)
	}
	if got := get(must(&runtimeapi.AuthConfig{IdentityToken: "tok"}), "r"); got != ":tok" {
		t.Errorf("identity token: %s", got)
	}
	if got := get(must(&runtimeapi.AuthConfig{ServerAddress: "docker.io"}), "registry-1.docker.io"); got != "fb:fbpass" {
		t.Errorf("an auth with no secret: %s", got)
	}
	if got := get(must(&runtimeapi.AuthConfig{Username: "u", Password: "p", ServerAddress: "docker.io"}), "registry-1.docker.io"); got != "u:p" {
		t.Errorf("docker.io's credentials for registry-1.docker.io: %s", got)
	}
	for _, bad := range []*runtimeapi.AuthConfig{{Auth: "%%%"}, {Auth: base64.StdEncoding.EncodeToString([]byte("nocolon"))}, {RegistryToken: "raw"}} {
		if _, err := withAuth(context.Background(), bad); status.Code(err) != codes.InvalidArgument {
			t.Errorf("withAuth(%v): %v, want InvalidArgument", bad, err)
		}
	}
}

type staticCreds struct{ user, pass string }

func (s staticCreds) Get(context.Context, string) (string, string, error) { return s.user, s.pass, nil }
