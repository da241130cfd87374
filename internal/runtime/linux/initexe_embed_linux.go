//go:build embedinit

package linux

import _ "embed"

// embeddedRuntime is cmd/berth-rt, built by `make build` before
// berth (see sealedRuntime).
//
//go:embed initexe/berth-rt
var embeddedRuntime string
