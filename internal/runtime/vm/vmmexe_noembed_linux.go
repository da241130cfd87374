//go:build !embedvmm

package vm

// embeddedShim is empty in builds without the embedvmm tag (go test, go
// vet, a plain go build): the shim is then this whole binary.
var embeddedShim string
