package runtimecli

import "path/filepath"

// Dispatch runs the runtime CLI when argv asks for it, as every binary
// holding the runtime is invoked: as berth-runtime (a symlink), or with
// `runtime` as its first argument. ok is false when argv asks for
// something else; code is then meaningless. runc's exit codes and error
// output are kept.
func Dispatch(argv []string) (code int, ok bool) {
	if len(argv) == 0 {
		return 0, false
	}
	if name := filepath.Base(argv[0]); name == "berth-runtime" {
		return Execute(NewCommand(name), argv[1:]), true
	}
	if len(argv) > 1 && argv[1] == "runtime" {
		return Execute(NewCommand("berth runtime"), argv[2:]), true
	}
	return 0, false
}
