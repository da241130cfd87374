// Package vm is the VM isolation driver: each container runs in its own
// QEMU microVM (TCG, or KVM where a probe guest comes up), booted from a
// guest kernel and an initramfs whose /init is cmd/berth-guest (berth's
// guest agent, internal/agent; the whole berth binary in a build without
// it). The image's layers are EROFS block devices, made once per layer
// and shared read-only; the agent stacks them with overlayfs over a
// writable layer. A shim process per VM (cmd/berth-vmm, likewise
// embedded; ShimName) is the host process that stands for the
// container: QEMU is its child, it relays stdio and signals over the
// agent's virtio-serial channel, and exits with the container's code.
// See docs/architecture.md ("VM driver").
package vm
