//go:build !linux

package cli

// No Docker API here (the engine is Linux's).
const (
	apiVersion    = ""
	minAPIVersion = ""
)
