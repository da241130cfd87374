package linux

import (
	"fmt"
	"os"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// checkLSM decides what to do with AppArmor and SELinux settings, which
// berth cannot apply yet. On a host where the module is off there is nothing
// to confine with and nothing to weaken: the setting is ignored with a
// warning. Where it is on, running the container unconfined would silently
// weaken what the user asked for, so create fails.
func checkLSM(spec *specs.Spec) error {
	p := spec.Process
	var apparmor, selinux string
	if p != nil {
		apparmor, selinux = p.ApparmorProfile, p.SelinuxLabel
	}
	mountLabel := ""
	if spec.Linux != nil {
		mountLabel = spec.Linux.MountLabel
	}
	if apparmor != "" {
		if apparmorEnabled() {
			return fmt.Errorf("process.apparmorProfile %q: berth cannot apply AppArmor profiles yet, and this host enforces AppArmor: remove the setting to run unconfined", apparmor)
		}
		fmt.Fprintf(os.Stderr, "berth: warning: process.apparmorProfile %q ignored: AppArmor is not enabled on this host\n", apparmor)
	}
	if selinux != "" || mountLabel != "" {
		if selinuxEnabled() {
			return fmt.Errorf("process.selinuxLabel/linux.mountLabel: berth cannot apply SELinux labels yet, and this host has SELinux enabled: remove the settings")
		}
		fmt.Fprintf(os.Stderr, "berth: warning: SELinux labels ignored: SELinux is not enabled on this host\n")
	}
	return nil
}

func apparmorEnabled() bool {
	data, err := os.ReadFile("/sys/module/apparmor/parameters/enabled")
	return err == nil && strings.HasPrefix(string(data), "Y")
}

func selinuxEnabled() bool {
	_, err := os.Stat("/sys/fs/selinux/enforce")
	return err == nil
}
