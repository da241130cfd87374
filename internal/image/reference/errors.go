package reference

import (
	"errors"
	"strconv"
)

var (
	// ErrInvalid is wrapped by every error this package returns for input
	// that is not a valid reference, tag, registry or digest.
	ErrInvalid = errors.New("invalid image reference")
	// ErrInvalidDigest is wrapped (as well as ErrInvalid) by errors about a
	// digest: bad syntax, unsupported algorithm, wrong length, upper-case hex.
	ErrInvalidDigest = errors.New("invalid digest")
)

// invalidError is the error for bad input: "<kind> <quoted input>: <reason>".
type invalidError struct {
	kind   string // "reference", "digest", "tag", "registry"
	input  string
	reason string
	digest bool // also ErrInvalidDigest
	// predicate: reason continues the sentence ("registry "x:" has an
	// empty port") rather than following a colon.
	predicate bool
}

func (e *invalidError) Error() string {
	if e.predicate {
		return e.kind + " " + quote(e.input) + " " + e.reason
	}
	return e.kind + " " + quote(e.input) + ": " + e.reason
}

// Is makes errors.Is(err, ErrInvalid) true, and errors.Is(err,
// ErrInvalidDigest) true for digest errors.
func (e *invalidError) Is(target error) bool {
	return target == ErrInvalid || (e.digest && target == ErrInvalidDigest)
}

// maxQuoted bounds how much of an input an error message repeats: input may
// come from a remote API and be arbitrarily long. The longest valid
// reference (255 + 1 + 128 + 1 + 135 characters) is shown whole.
const maxQuoted = 540

// quote returns s quoted with Go syntax, shortened to maxQuoted bytes.
func quote(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:maxQuoted]) + "… (" + strconv.Itoa(len(s)) + " bytes)"
}

func invalid(kind, input, reason string) error {
	return &invalidError{kind: kind, input: input, reason: reason}
}
