// Package netns makes network namespaces objects with their own lifetime:
// created before any container, pinned by a bind mount of the namespace
// file onto a path (so it outlives every process in it), joined by path,
// and torn down by unmounting and removing that path.
//
// # Layout
//
//	<dir>/<name>    an empty file with the namespace bind-mounted onto it
//
// # Invariants
//
//   - A name under dir is taken by New with an exclusive create; the file
//     counts as a namespace only while one is mounted on it (List and
//     IsPinned check the mount, not the name), so a New killed before its
//     mount leaves a file that is never mistaken for a namespace, and that
//     CleanStale removes after a minute. (A mount point cannot be renamed,
//     so temp-and-rename is not available here.)
//   - Creating a namespace never changes the namespace of the calling
//     goroutine's thread for good: the unshare runs on a locked OS thread
//     that is thrown away afterwards (the goroutine exits while locked), so
//     no goroutine of the caller ever runs in the new namespace by accident.
//   - Remove is idempotent: a missing namespace is not an error, and a
//     leftover file without a mount (a process killed between create and
//     mount, or between unmount and remove) is removed too.
package netns
