//go:build embedinit

package linux

import _ "embed"

// embeddedInit is cmd/berth-containerinit, built by `make build` before
// berth (see sealedInit).
//
//go:embed initexe/berth-containerinit
var embeddedInit []byte
