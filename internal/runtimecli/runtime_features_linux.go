package runtimecli

import (
	"sort"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/runtime/linux"
	"github.com/berth-dev/berth/internal/runtime/linux/seccomp"
	"github.com/berth-dev/berth/internal/runtime/oci"
)

func featuresCmd() *cobra.Command {
	return &cobra.Command{
		Use: "features", Short: "Print the runtime-spec features document", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return printJSON(runtimeFeatures(), true)
		},
	}
}

func runtimeFeatures() *features.Features {
	t, f := true, false
	var nss []string
	for ns := range oci.NamespaceFlags {
		nss = append(nss, string(ns))
	}
	sort.Strings(nss)
	opts := mountOptionNames()
	feat := &features.Features{
		OCIVersionMin: "1.0.0",
		OCIVersionMax: specs.Version,
		Hooks:         []string{"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"},
		MountOptions:  opts,
		Linux: &features.Linux{
			Namespaces:   nss,
			Capabilities: oci.KnownCapabilities(),
			Cgroup:       &features.Cgroup{V1: &t, V2: &t, Systemd: &f, SystemdUser: &f, Rdma: &t},
			Seccomp:      seccompFeatures(),
			Apparmor:     &features.Apparmor{Enabled: &f},
			Selinux:      &features.Selinux{Enabled: &f},
			IntelRdt:     &features.IntelRdt{Enabled: &f},
			MountExtensions: &features.MountExtensions{
				IDMap: &features.IDMap{Enabled: &f},
			},
		},
		Annotations: map[string]string{
			"org.opencontainers.runtime-spec.features.runtime": "berth",
		},
	}
	return feat
}

func mountOptionNames() []string { return linux.MountOptionNames() }

func seccompFeatures() *features.Seccomp {
	enabled := seccomp.Enabled()
	return &features.Seccomp{
		Enabled:        &enabled,
		Actions:        seccomp.SupportedActions(),
		Operators:      seccomp.SupportedOperators(),
		Archs:          seccomp.SupportedArchs(),
		KnownFlags:     seccomp.SupportedFlags(),
		SupportedFlags: seccomp.SupportedFlags(),
	}
}
