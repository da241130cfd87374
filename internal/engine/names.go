//go:build linux

package engine

import (
	"crypto/rand"
	"fmt"
	"math/big"
)

// Generated names: an adjective and a word of the harbour, as docker and
// podman give "adjective_noun" names. After collisions a number is added.
var (
	nameAdjectives = []string{
		"amber", "brave", "brisk", "calm", "clever", "cosy", "crisp", "daring", "eager", "fair",
		"gentle", "glad", "golden", "happy", "hardy", "jolly", "keen", "kind", "lively", "lucky",
		"merry", "mighty", "modest", "nimble", "noble", "patient", "plucky", "proud", "quick", "quiet",
		"rapid", "ready", "serene", "sharp", "shiny", "silent", "sleek", "snug", "steady", "stout",
		"sunny", "swift", "tidy", "tranquil", "trusty", "vivid", "warm", "wise", "witty", "zesty",
	}
	nameNouns = []string{
		"anchor", "barge", "beacon", "bollard", "bow", "buoy", "cabin", "capstan", "cargo", "channel",
		"compass", "cove", "crane", "current", "deck", "dinghy", "dock", "ferry", "fleet", "galley",
		"gangway", "harbour", "hawser", "helm", "hull", "inlet", "jetty", "keel", "lantern", "lighthouse",
		"mast", "mooring", "oar", "pier", "pilot", "port", "quay", "rudder", "sail", "schooner",
		"sextant", "skiff", "slipway", "starboard", "tide", "tug", "wake", "wharf", "winch", "yacht",
	}
)

func pick(list []string) string {
	n, _ := rand.Int(rand.Reader, big.NewInt(int64(len(list))))
	return list[n.Int64()]
}

func randomName(try int) string {
	n := pick(nameAdjectives) + "_" + pick(nameNouns)
	if try > 3 {
		n = fmt.Sprintf("%s%d", n, try)
	}
	return n
}
