package credentials

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// HelperPrefix is the prefix of credential helper executables:
// the helper "pass" is the program docker-credential-pass.
const HelperPrefix = "docker-credential-"

// DefaultHelperTimeout bounds one run of a credential helper when
// Options.HelperTimeout is zero.
const DefaultHelperTimeout = 30 * time.Second

// helperNotFound is the message docker's helpers print for a server
// address they hold nothing for.
const helperNotFound = "credentials not found in native keychain"

// tokenUsername is the username a helper stores with an identity token.
const tokenUsername = "<token>"

// Bounds on what is kept of a helper's output.
const (
	maxHelperStdout = 1 << 20
	maxHelperStderr = 4 << 10
)

// ErrHelperNotInstalled is wrapped by the error for a configured helper
// whose executable is not on the helper search path.
var ErrHelperNotInstalled = errors.New("credential helper not installed")

// HelperError reports a credential helper that failed. Its message holds
// the helper's diagnostic output (stderr, or stdout of a failed run, where
// docker's helpers print their errors), never a credential.
type HelperError struct {
	Helper string // the program, e.g. "docker-credential-pass"
	Op     string // "get", "store" or "erase"
	Server string // the server address it was asked about
	Output string // the helper's diagnostic output, trimmed and bounded
	Err    error  // what went wrong: an exit status, a timeout (wrapping context.DeadlineExceeded), ...
}

func (e *HelperError) Error() string {
	msg := fmt.Sprintf("credentials: %s %s %s: %v", e.Helper, e.Op, e.Server, e.Err)
	if e.Output != "" {
		msg += ": " + e.Output
	}
	return msg
}

func (e *HelperError) Unwrap() error { return e.Err }

// helperMessage is the JSON docker's helper protocol speaks.
type helperMessage struct {
	ServerURL string `json:"ServerURL"`
	Username  string `json:"Username"`
	Secret    string `json:"Secret"`
}

// findHelper returns the executable for the helper name on the search path.
func (k *Keychain) findHelper(name string) (string, error) {
	prog := HelperPrefix + name
	if name == "" || strings.ContainsAny(name, `/\`) || name == "." || name == ".." {
		return "", &HelperError{Helper: prog, Op: "lookup", Err: fmt.Errorf("invalid helper name %q: a helper is named by the part after %q", name, HelperPrefix)}
	}
	exe := ""
	if runtime.GOOS == "windows" {
		exe = ".exe"
	}
	for _, dir := range filepath.SplitList(k.path) {
		if dir == "" {
			continue // an empty element would mean the working directory: never run helpers from there
		}
		p := filepath.Join(dir, prog+exe)
		fi, err := os.Stat(p)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if runtime.GOOS != "windows" && fi.Mode()&0o111 == 0 {
			continue
		}
		return p, nil
	}
	return "", &HelperError{Helper: prog, Op: "lookup",
		Err: fmt.Errorf("%w: %s is not an executable in any directory of the search path (PATH=%q); install it or remove it from the config", ErrHelperNotInstalled, prog, k.path)}
}

// runHelper runs one helper operation with input on stdin. It returns the
// helper's stdout, and notFound when the helper says it holds nothing for
// the server.
func (k *Keychain) runHelper(ctx context.Context, name, op, server string, input []byte) (stdout []byte, notFound bool, err error) {
	path, err := k.findHelper(name)
	if err != nil {
		var he *HelperError
		if errors.As(err, &he) {
			he.Op, he.Server = op, server
		}
		return nil, false, err
	}
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	rctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	cmd := exec.CommandContext(rctx, path, op)
	cmd.Stdin = bytes.NewReader(input)
	var out, errOut boundedBuffer
	out.max, errOut.max = maxHelperStdout, maxHelperStderr
	cmd.Stdout, cmd.Stderr = &out, &errOut
	// A helper killed for the timeout may leave children holding its
	// pipes; stop waiting for them shortly after.
	cmd.WaitDelay = time.Second
	runErr := cmd.Run()
	if runErr == nil {
		return out.Bytes(), false, nil
	}
	if strings.Contains(out.String(), helperNotFound) || strings.Contains(errOut.String(), helperNotFound) {
		if cmd.ProcessState != nil && !cmd.ProcessState.Success() {
			return nil, true, nil
		}
	}
	he := &HelperError{Helper: HelperPrefix + name, Op: op, Server: server, Err: runErr}
	he.Output = diagnostic(errOut.String())
	if he.Output == "" && op != "get" {
		// docker's helpers print their errors on stdout. A failed get's
		// stdout is left out all the same: it could hold a credential.
		he.Output = diagnostic(out.String())
	}
	switch {
	case ctx.Err() != nil:
		he.Err = ctx.Err()
	case errors.Is(rctx.Err(), context.DeadlineExceeded):
		he.Err = fmt.Errorf("no answer within %s (is it waiting for input or for a locked keychain?): %w", k.timeout, context.DeadlineExceeded)
	case errors.Is(runErr, fs.ErrNotExist) || errors.Is(runErr, exec.ErrNotFound):
		he.Err = fmt.Errorf("%w: %v", ErrHelperNotInstalled, runErr)
	}
	return nil, false, he
}

// helperServers are the server addresses to ask a helper about registry:
// docker's address first, then for Docker Hub also "docker.io", under which
// other tools store it.
func helperServers(registry string) []string {
	s := ServerURL(registry)
	if s != registry {
		return []string{s, registry}
	}
	return []string{s}
}

func (k *Keychain) helperGet(ctx context.Context, name, registry string) (Credential, bool, error) {
	for i, server := range helperServers(registry) {
		out, notFound, err := k.runHelper(ctx, name, "get", server, []byte(server))
		if err != nil {
			if i > 0 && ctx.Err() == nil {
				break // the alias is a courtesy: its failure is no answer
			}
			return Credential{}, false, err
		}
		if notFound {
			continue
		}
		var m helperMessage
		if err := json.Unmarshal(out, &m); err != nil {
			// Never quote the output: it may hold the secret.
			return Credential{}, false, &HelperError{Helper: HelperPrefix + name, Op: "get", Server: server,
				Err: errors.New(`its answer is not the helper protocol's JSON {"ServerURL","Username","Secret"}`)}
		}
		if m.Username == "" && m.Secret == "" {
			continue
		}
		if m.Username == tokenUsername {
			return Credential{IdentityToken: m.Secret}, true, nil
		}
		return Credential{Username: m.Username, Password: m.Secret}, true, nil
	}
	return Credential{}, false, nil
}

func (k *Keychain) helperStore(ctx context.Context, name, registry string, c Credential) error {
	server := ServerURL(registry)
	m := helperMessage{ServerURL: server, Username: c.Username, Secret: c.Password}
	if c.IdentityToken != "" {
		m.Username, m.Secret = tokenUsername, c.IdentityToken
	}
	var in bytes.Buffer
	enc := json.NewEncoder(&in)
	enc.SetEscapeHTML(false) // "<token>" as written, for helpers that match it textually
	if err := enc.Encode(m); err != nil {
		return err
	}
	_, _, err := k.runHelper(ctx, name, "store", server, bytes.TrimSpace(in.Bytes()))
	return err
}

// helperErase erases registry's credential from the helper; it reports
// whether the helper held one.
func (k *Keychain) helperErase(ctx context.Context, name, registry string) (bool, error) {
	found := false
	for i, server := range helperServers(registry) {
		_, notFound, err := k.runHelper(ctx, name, "erase", server, []byte(server))
		if err != nil {
			if i > 0 && ctx.Err() == nil {
				break // the alias is a courtesy: some helpers fail on absent entries
			}
			return found, err
		}
		if !notFound {
			found = true
		}
	}
	return found, nil
}

// diagnostic trims a helper's output for an error message.
func diagnostic(s string) string {
	s = strings.TrimSpace(s)
	s = strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ; ")), " ")
	if len(s) > 512 {
		s = s[:512] + "..."
	}
	return s
}

// boundedBuffer keeps the first max bytes written to it and discards the
// rest, so that a runaway helper cannot exhaust memory.
type boundedBuffer struct {
	bytes.Buffer
	max int
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
