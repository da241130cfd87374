//go:build !embedinit

package linux

// embeddedRuntime is empty in builds without the embedinit tag (go test, go
// vet, a plain go build): the container init is then the binary itself.
var embeddedRuntime string
