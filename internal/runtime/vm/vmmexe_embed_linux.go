//go:build embedvmm

package vm

import _ "embed"

// embeddedShim is cmd/berth-vmm (the shim alone), built by `make build`
// before berth (see shimExecutable).
//
//go:embed vmmexe/berth-vmm
var embeddedShim string
