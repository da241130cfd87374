package cli

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/moby/moby/api/types/system"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

// versionOutput is `berth version`'s object, docker's shape: the client's
// part and the server's (the moby API's VersionResponse). berth is both.
type versionOutput struct {
	Client versionClient
	Server system.VersionResponse
}

type versionClient struct {
	Platform          *struct{ Name string } `json:",omitempty"` // docker's CLI shows it only for Docker's builds
	Version           string
	APIVersion        string `json:"ApiVersion"`
	DefaultAPIVersion string
	GitCommit         string
	GoVersion         string
	Os                string
	Arch              string
	BuildTime         string
	Context           string
}

func currentVersion() versionOutput {
	var uts unix.Utsname
	unix.Uname(&uts)
	kernel := unix.ByteSliceToString(uts.Release[:])
	commit := ""
	if _, c, ok := strings.Cut(Version, "+"); ok {
		commit = c
	}
	v := versionOutput{Client: versionClient{Version: Version, APIVersion: apiVersion, DefaultAPIVersion: apiVersion,
		GitCommit: commit, GoVersion: runtime.Version(), Os: runtime.GOOS, Arch: runtime.GOARCH, Context: "default"}}
	v.Server = system.VersionResponse{Platform: system.PlatformInfo{Name: "berth"}, Version: Version, APIVersion: apiVersion,
		MinAPIVersion: minAPIVersion, GitCommit: commit, GoVersion: runtime.Version(), Os: runtime.GOOS, Arch: runtime.GOARCH,
		KernelVersion: kernel,
		Components: []system.ComponentVersion{{Name: "Engine", Version: Version, Details: map[string]string{
			"ApiVersion": apiVersion, "MinAPIVersion": minAPIVersion, "GitCommit": commit,
			"GoVersion": runtime.Version(), "Os": runtime.GOOS, "Arch": runtime.GOARCH, "KernelVersion": kernel}}}}
	if self, err := os.Executable(); err == nil {
		if fi, err := os.Stat(self); err == nil {
			built := fi.ModTime().UTC().Format(time.RFC3339Nano)
			v.Client.BuildTime, v.Server.BuildTime = built, built
		}
	}
	return v
}

func newVersionCommand() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "version [OPTIONS]",
		Short: "Show the version: the client's and the engine's (the same binary)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			v := currentVersion()
			if format == "json" {
				format = "{{json .}}"
			}
			if format != "" {
				return printInspect([]any{v}, format)
			}
			c, s := v.Client, v.Server
			fmt.Printf("Client:\n Version:           %s\n API version:       %s\n Go version:        %s\n Git commit:        %s\n OS/Arch:           %s/%s\n Context:           %s\n\n",
				c.Version, c.APIVersion, c.GoVersion, c.GitCommit, c.Os, c.Arch, c.Context)
			fmt.Printf("Server: %s\n Engine:\n  Version:          %s\n  API version:      %s (minimum version %s)\n  Go version:       %s\n  Git commit:       %s\n  OS/Arch:          %s/%s\n  Kernel Version:   %s\n",
				s.Platform.Name, s.Version, s.APIVersion, s.MinAPIVersion, s.GoVersion, s.GitCommit, s.Os, s.Arch, s.KernelVersion)
			return nil
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "json or a Go template")
	return cmd
}
