//go:build linux

package cli

import "github.com/berth-dev/berth/internal/dockerapi"

// The Docker API versions berth serve speaks (version shows them).
const (
	apiVersion    = dockerapi.APIVersion
	minAPIVersion = dockerapi.MinAPIVersion
)
