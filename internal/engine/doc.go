// Package engine runs containers from images: records, lifecycle, logs,
// restart policies. It is daemonless: every operation is a function a
// short-lived CLI process calls, and what must outlive the CLI (a
// detached container's stdio, log and exit status) is held by the
// container's monitor (package monitor), a small C process per container.
//
// State:
//
//	<root>/engine/berth.db              container records (package store)
//	<root>/containers/<id>/config.json  the OCI bundle (rootfs under <state>)
//	<root>/containers/<id>/hosts, hostname, resolv.conf
//	<root>/containers/<id>/<id>-json.log (+ .1 .. .N after rotation)
//	<root>/snapshots/active/<id>        the writable layer
//	<state>/containers/<id>/rootfs      the overlay mount
//	<state>/containers/<id>/exit        written by the monitor at exit
//	<state>/containers/<id>/lock        the container's lock
//	<state>/runtime/                    the linux driver's root
//
// Invariants:
//   - A record's Status says what was last decided; what is true now is
//     derived (refresh): a "running" record whose monitor is gone is
//     reconciled (exit file or kill, then the restart policy) by the next
//     command that reads it, under the container's lock.
//   - Create writes the record first (Status "creating", with the creating
//     process) and every file after; Remove marks it "removing" first and
//     deletes the record last. A record left in either state by a killed
//     process is finished or undone by the next command that sees it.
//   - Names are unique (the store's UNIQUE index), IDs are 64 hex digits.
//
// Lock order: the container's flock, then the hosts-file lock
// (<state>/locks/hosts), then a store transaction (short, never held
// across a wait); the network manager's lock (<root>/networks/lock) is
// taken inside a container's lock and never around one. A deferred DEL's
// journal (<root>/netdel/<id>, its flock: netdefer.go) is taken with no
// engine lock held but, at a start, the container's own; the network
// manager's lock is taken inside it. A warm pod network's journal
// (<root>/netwarm/<id>, netwarm.go) is flocked from its making by the
// engine that holds the spare, with no other lock around the taking, and
// only tried (never waited for) by a sweep, which may take the pod's lock
// under it (a spare taken by a pod whose creation was cut short). The
// volumes lock
// (<root>/volumes/.lock) comes after the container's flock and before a
// transaction; nothing else is taken under it. It makes a volume's
// resolution and the record of its use one step against rm and prune.
// A running container's monitor records itself in the same transaction
// that marks the record running. rmi asks the
// store which containers use an image (image.Options.InUse); a create
// records its image before it mounts the layers.
package engine
