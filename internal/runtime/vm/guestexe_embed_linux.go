//go:build embedguest

package vm

import _ "embed"

// embeddedGuest is cmd/berth-guest (the agent, the runtime and the file
// helper alone), built by `make build` before berth: the initramfs's
// /init (see Initramfs).
//
//go:embed guestexe/berth-guest
var embeddedGuest string
