// Package content is berth's content-addressed blob store: the place where
// image manifests, configs and layer blobs live, each under its digest.
//
// # Layout
//
//	<root>/blobs/<alg>/<hex>        committed blobs, mode 0444, never modified
//	<root>/ingest/<sha256(ref)>/    one in-progress write ("ingest") per ref
//	    status.json                 ref, expected digest and size, offset at
//	                                the last clean Close, start time
//	    data                        the bytes received so far
//
// <alg> is sha256 or sha512; <hex> is the lower-case hex encoding of the
// digest (64 or 128 characters). Digests are the strings of the OCI image
// spec, "sha256:<hex>" and "sha512:<hex>"; anything else is rejected with an
// error wrapping ErrInvalidDigest that quotes the input.
//
// # Invariants
//
//   - Nothing half-done is ever visible. A blob appears in blobs/ only after
//     its size and digest were verified against what the writer promised
//     (computed while streaming, so the data is never read twice), its data
//     was fsynced and it was made read-only; it appears by a single link(2)
//     from the ingest, which fails rather than replaces when the name exists,
//     and the blobs directory is fsynced after it. A blob under a name is
//     therefore always complete and always has that digest.
//   - A commit that fails verification removes its ingest; the wrong bytes
//     are never kept. A commit whose digest is already stored removes its
//     ingest and reports ErrAlreadyExists (callers treat it as success: see
//     IsAlreadyExists). Of any number of concurrent commits of one digest,
//     exactly one links the file; the others get ErrAlreadyExists.
//   - An ingest is only ever written by the Writer holding its lock. A Writer
//     that dies (process killed, Writer dropped) leaves its ingest behind;
//     the next Writer for the same ref, expected digest and size re-hashes
//     the bytes already there and resumes at Offset. An ingest whose status
//     disagrees with the new request, or whose data is read-only (a commit
//     interrupted after the link: the file may share its inode with a blob),
//     is restarted from zero instead, never appended to.
//   - Leftovers are cleaned by CleanIngests: ingests that nobody holds and
//     that were not written for a given time, and at any age the debris of a
//     crash (an ingest without a readable status, or with read-only data).
//   - Blobs are removed only by Delete (a single unlink). Open readers keep
//     reading the unlinked file. Serialising Delete against a concurrent
//     commit of the same digest is the garbage collector's job.
//
// # Locks and lock order
//
// The only locks are flock(2) locks on ingest directories, always taken
// non-blocking (LOCK_NB): a Writer holds the lock of its own ingest from
// Writer until Commit, Close or Abort; CleanIngests holds one ingest's lock
// at a time while it decides and removes. Nothing ever holds two ingest
// locks, and nothing waits for one (a busy ingest is ErrLocked to a Writer
// and skipped by CleanIngests), so no lock order exists to violate and no
// deadlock is possible. Because flock locks belong to open file
// descriptions, they exclude goroutines of one process as well as other
// processes, and a killed process's locks vanish with it. An ingest
// directory is removed only by the holder of its lock, while holding it;
// whoever locks a directory checks afterwards that it is still the one at
// its path, and retries if it was removed meanwhile.
//
// The blobs directories take no lock: blobs are immutable, publishing is a
// no-replace link and removal a single unlink.
//
// A Store is safe for concurrent use. A Writer is not: one goroutine at a
// time.
package content
