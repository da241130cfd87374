// Package snapshot keeps unpacked image layers, one directory per layer,
// for the overlay root filesystems of containers.
//
// # Layout
//
//	<root>/layers/<alg>/<hex>/        one committed layer, named by its diffID
//	    fs/                           the layer's files, whiteouts in overlay form
//	                                  (0/0 character devices, trusted.overlay.opaque)
//	    info.json                     diffID, size in bytes, entries, unpack time
//	<root>/tmp/<alg>-<hex>-<random>/  a layer being unpacked
//	<root>/trash/<random>/            a layer being removed
//	<root>/locks/<alg>-<hex>          the flock file of one layer
//	<root>/active/<key>/upper, work/  a container's writable layer (Prepare,
//	                                  MountOverlay, Release; see active.go)
//
// A layer's directory holds that layer alone, never its parents: its
// content depends on its diffID only, so layers unpack in parallel, each
// into its own directory, and a layer shared by images (same diffID) is kept
// once. A container's root filesystem stacks them as overlayfs lowerdirs.
//
// # Invariants
//
//   - Nothing half-done is visible. A layer appears under layers/ only by one
//     rename(2) of a directory that was completely unpacked, verified by the
//     caller and synced; it disappears by one rename into trash/ before it
//     is deleted. A directory under layers/ is therefore always complete.
//   - One unpack per layer at a time, in this process or any other: Unpack
//     holds the layer's lock from before it looks for the layer until after
//     the rename. A second Unpack of the same layer waits for the lock and
//     then finds the layer there: the work is done once and both succeed.
//   - Leftovers of a killed unpack (tmp/) or removal (trash/) are removed by
//     the next Unpack of the same layer (under its lock) and by Clean.
//
// # Locks
//
// Only per-layer flock(2) locks exist, each taken alone (nothing holds two),
// so there is no lock order. The caller (the image service) serialises
// garbage collection against pulls with its own lock, taken before any of
// these.
package snapshot
