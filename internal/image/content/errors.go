package content

import "errors"

// Error categories. Every error the store returns for one of these
// conditions wraps the sentinel (test with errors.Is) and says which blob,
// digest or ingest it is about.
var (
	// ErrNotFound: no blob with that digest is committed.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists: the blob is committed already. Writer and Commit
	// return it; callers that want the blob present treat it as success.
	ErrAlreadyExists = errors.New("already exists")
	// ErrDigestMismatch: the bytes written do not have the expected digest.
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrSizeMismatch: more or fewer bytes were written than expected.
	ErrSizeMismatch = errors.New("size mismatch")
	// ErrLocked: another Writer, in this process or another, holds the ingest.
	ErrLocked = errors.New("locked by another writer")
	// ErrInvalidDigest: the string is not "sha256:<64 hex>" or "sha512:<128 hex>".
	ErrInvalidDigest = errors.New("invalid digest")
)

// IsAlreadyExists reports whether err says the blob is already committed,
// which callers that only want the blob present treat as success.
func IsAlreadyExists(err error) bool { return errors.Is(err, ErrAlreadyExists) }

// IsNotFound reports whether err says the blob is not in the store.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
