package remote

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Sentinel error categories; every error from this package wraps one.
var (
	// ErrNotFound: the manifest, blob, tag or repository is unknown, or an
	// index has no manifest for the platform asked.
	ErrNotFound = errors.New("not found")
	// ErrUnauthorized: the registry refused access (401/403) after
	// authenticating, or the credentials could not be used.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrInvalid: bad content or input: a digest or size mismatch, an
	// unsupported media type, a malformed manifest, a bad configuration.
	ErrInvalid = errors.New("invalid")
	// ErrUnavailable: the registry could not be reached, or kept failing
	// (5xx, 429, network errors) after the retries.
	ErrUnavailable = errors.New("registry unavailable")
)

// Error is the error type of this package.
type Error struct {
	Op     string // "pull", "push", "resolve", "fetch blob", "list tags", "config"
	Ref    string // reference, "registry/repo@digest", or a file name
	Kind   error  // one of the sentinel errors
	Status int    // HTTP status, 0 if none
	// Codes are the registry's error codes ({"errors":[{"code":...}]}).
	Codes []RegistryError
	Msg   string // what went wrong
	Hint  string // what to do, may be empty
	Err   error  // underlying error, may be nil
}

// RegistryError is one entry of a registry's JSON error body.
type RegistryError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Op)
	if e.Ref != "" {
		b.WriteString(" " + e.Ref)
	}
	b.WriteString(": " + e.Msg)
	if len(e.Codes) > 0 {
		b.WriteString(": registry says")
		for i, c := range e.Codes {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, " %s %q", c.Code, c.Message)
		}
	}
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	if e.Hint != "" {
		b.WriteString(" (" + e.Hint + ")")
	}
	return b.String()
}

// Is reports whether target is e's category.
func (e *Error) Is(target error) bool { return target == e.Kind }

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// opRef names an operation and its subject, for errors.
type opRef struct{ op, ref string }

func (o opRef) errorf(kind error, hint, format string, args ...any) *Error {
	return &Error{Op: o.op, Ref: o.ref, Kind: kind, Msg: fmt.Sprintf(format, args...), Hint: hint}
}

// fromResponse builds an error from an unexpected response and closes its
// body. The category follows the status unless kind is non-nil.
func (o opRef) fromResponse(resp *http.Response, kind error, msg, hint string) *Error {
	e := &Error{Op: o.op, Ref: o.ref, Kind: kind, Status: resp.StatusCode, Msg: msg, Hint: hint}
	e.Codes = readRegistryErrors(resp)
	if e.Kind == nil {
		e.Kind = kindForStatus(resp.StatusCode)
	}
	if e.Msg == "" {
		e.Msg = "unexpected response " + resp.Status
	} else {
		e.Msg += " (" + resp.Status + ")"
	}
	return e
}

func kindForStatus(code int) error {
	switch {
	case code == http.StatusNotFound:
		return ErrNotFound
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return ErrUnauthorized
	case code == http.StatusTooManyRequests || code >= 500:
		return ErrUnavailable
	}
	return ErrInvalid
}

// readRegistryErrors parses a distribution JSON error body (at most 64 KiB)
// and closes the body.
func readRegistryErrors(resp *http.Response) []RegistryError {
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var body struct {
		Errors []RegistryError `json:"errors"`
	}
	if json.Unmarshal(data, &body) == nil && len(body.Errors) > 0 {
		for i := range body.Errors {
			body.Errors[i].Message = truncate(body.Errors[i].Message, 200)
		}
		if len(body.Errors) > 5 {
			body.Errors = body.Errors[:5]
		}
		return body.Errors
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
