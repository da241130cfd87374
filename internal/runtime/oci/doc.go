// Package oci holds the platform-independent parts of the OCI runtime:
// loading and validating a bundle's config.json, the runtime-spec state
// document, hooks, signal and capability names, and the default spec that
// `berth runtime spec` writes.
//
// Nothing here touches namespaces or cgroups; drivers (internal/runtime/linux,
// later vm and jail) build on it.
package oci
