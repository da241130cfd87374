//go:build !embedguest

package vm

// embeddedGuest is empty in builds without the embedguest tag (go test,
// go vet, a plain go build): the initramfs's /init is then this whole
// binary, which plays the agent's, the runtime's and the file helper's
// parts as well.
var embeddedGuest string
