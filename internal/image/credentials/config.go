package credentials

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Top-level and per-entry field names of the config.json format.
const (
	fieldAuths       = "auths"
	fieldCredHelpers = "credHelpers"
	fieldCredsStore  = "credsStore"

	entryAuth          = "auth"
	entryUsername      = "username"
	entryPassword      = "password"
	entryIdentityToken = "identitytoken"
)

// secretFields are the per-entry fields berth reads and rewrites; every
// other field of an entry is kept as it is.
var secretFields = []string{entryAuth, entryUsername, entryPassword, entryIdentityToken}

// maxConfigSize bounds how much of a config file is read.
const maxConfigSize = 16 << 20

// ConfigError reports a credentials file that cannot be read or parsed. Its
// message names the file and says how to fix it.
type ConfigError struct {
	Path string // the file
	Err  error  // what is wrong with it
	hint string
}

func (e *ConfigError) Error() string {
	msg := fmt.Sprintf("credentials: %s: %v", e.Path, e.Err)
	if e.hint != "" {
		msg += "; " + e.hint
	}
	return msg
}

func (e *ConfigError) Unwrap() error { return e.Err }

// configFile is one parsed config.json-format file. Only auths is ever
// rewritten; every other top-level field is written back byte for byte.
type configFile struct {
	path   string
	docker bool // docker's config (read-only), not berth's auth file

	top         map[string]json.RawMessage // every top-level field as read
	auths       map[string]json.RawMessage // entries under their keys as stored
	credHelpers map[string]string
	credsStore  string
}

// authEntry is the part of an auths entry berth understands.
type authEntry struct {
	Auth          string `json:"auth"`
	Username      string `json:"username"`
	Password      string `json:"password"`
	IdentityToken string `json:"identitytoken"`
}

func (c *configFile) fault(err error) *ConfigError {
	hint := `fix the JSON, or move the file away and log in again with "berth login"`
	if c.docker {
		hint = "berth only reads this file: fix the JSON (docker's format), or point DOCKER_CONFIG at another directory"
	}
	return &ConfigError{Path: c.path, Err: err, hint: hint}
}

// readConfig reads and parses a config file. A missing or empty file is an
// empty config.
func readConfig(path string, docker bool) (*configFile, error) {
	c := &configFile{
		path:   path,
		docker: docker,
		top:    map[string]json.RawMessage{},
		auths:  map[string]json.RawMessage{},
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, &ConfigError{Path: path, Err: err, hint: "check the file's permissions"}
	}
	defer f.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(io.LimitReader(f, maxConfigSize+1)); err != nil {
		return nil, &ConfigError{Path: path, Err: err, hint: "check the file"}
	}
	if buf.Len() > maxConfigSize {
		return nil, c.fault(fmt.Errorf("larger than %d bytes", maxConfigSize))
	}
	if err := c.parse(buf.Bytes()); err != nil {
		return nil, c.fault(err)
	}
	return c, nil
}

func (c *configFile) parse(data []byte) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, &c.top); err != nil {
		return fmt.Errorf("not valid JSON: %w", err)
	}
	if c.top == nil { // the file is "null"
		c.top = map[string]json.RawMessage{}
	}
	if raw, ok := c.top[fieldAuths]; ok {
		if err := json.Unmarshal(raw, &c.auths); err != nil {
			return fmt.Errorf(`"auths" must be an object of registry entries: %w`, err)
		}
		if c.auths == nil {
			c.auths = map[string]json.RawMessage{}
		}
		for key, raw := range c.auths {
			if _, err := decodeEntry(raw); err != nil {
				return fmt.Errorf("auths entry %q: %w", key, err)
			}
		}
	}
	if raw, ok := c.top[fieldCredHelpers]; ok {
		if err := json.Unmarshal(raw, &c.credHelpers); err != nil {
			return fmt.Errorf(`"credHelpers" must map registries to helper names: %w`, err)
		}
	}
	if raw, ok := c.top[fieldCredsStore]; ok {
		if err := json.Unmarshal(raw, &c.credsStore); err != nil {
			return fmt.Errorf(`"credsStore" must be a helper name: %w`, err)
		}
	}
	return nil
}

func decodeEntry(raw json.RawMessage) (authEntry, error) {
	var e authEntry
	if err := json.Unmarshal(raw, &e); err != nil {
		return authEntry{}, fmt.Errorf("must be an object with string fields: %w", err)
	}
	return e, nil
}

// matchKeys returns the keys of m that name registry, best first: the
// registry as written, then docker's server address for it, then the rest in
// sorted order.
func matchKeys[V any](m map[string]V, registry string) []string {
	var keys []string
	for k := range m {
		if SameRegistry(k, registry) {
			keys = append(keys, k)
		}
	}
	rank := func(k string) int {
		switch k {
		case registry:
			return 0
		case ServerURL(registry):
			return 1
		}
		return 2
	}
	slices.SortFunc(keys, func(a, b string) int {
		if d := rank(a) - rank(b); d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	return keys
}

// helperFor returns the helper the file configures for registry: its
// credHelpers entry, else its credsStore, else "".
func (c *configFile) helperFor(registry string) string {
	if h := c.credHelper(registry); h != "" {
		return h
	}
	return c.credsStore
}

// credHelper returns the file's credHelpers entry for registry, or "".
func (c *configFile) credHelper(registry string) string {
	for _, k := range matchKeys(c.credHelpers, registry) {
		if h := c.credHelpers[k]; h != "" {
			return h
		}
	}
	return ""
}

// lookupAuths returns the credential the auths entries hold for registry.
func (c *configFile) lookupAuths(registry string) (Credential, bool, error) {
	for _, key := range matchKeys(c.auths, registry) {
		e, err := decodeEntry(c.auths[key])
		if err != nil {
			return Credential{}, false, c.fault(fmt.Errorf("auths entry %q: %w", key, err))
		}
		cred, err := e.credential()
		if err != nil {
			return Credential{}, false, c.fault(fmt.Errorf("auths entry %q: %w", key, err))
		}
		if !cred.IsZero() {
			return cred, true, nil
		}
	}
	return Credential{}, false, nil
}

func (e authEntry) credential() (Credential, error) {
	c := Credential{Username: e.Username, Password: e.Password, IdentityToken: e.IdentityToken}
	if e.Auth != "" {
		user, pass, err := decodeAuth(e.Auth)
		if err != nil {
			return Credential{}, err
		}
		c.Username, c.Password = user, pass
	}
	return c, nil
}

func decodeAuth(s string) (user, pass string, err error) {
	s = strings.TrimSpace(s)
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		b, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
	}
	if err != nil {
		return "", "", errors.New(`"auth" is not base64 of "username:password"`)
	}
	user, pass, ok := strings.Cut(string(b), ":")
	if !ok {
		return "", "", errors.New(`"auth" does not decode to "username:password" (no ':')`)
	}
	return user, pass, nil
}

func encodeAuth(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
}

// setEntry stores c for registry in the auths entries: the best existing key
// for the registry keeps its spelling and its other fields, the registry's
// other keys go, and with no existing key the entry is stored under the
// registry host[:port] itself.
func (c *configFile) setEntry(registry string, cred Credential) error {
	keys := matchKeys(c.auths, registry)
	key := registry
	fields := map[string]json.RawMessage{}
	if len(keys) > 0 {
		key = keys[0]
		var err error
		if fields, err = entryFields(c.auths[key]); err != nil {
			return c.fault(fmt.Errorf("auths entry %q: %w", key, err))
		}
	}
	for _, k := range keys {
		delete(c.auths, k)
	}
	dropSecretFields(fields)
	if cred.Username != "" || cred.Password != "" {
		fields[entryAuth] = jsonString(encodeAuth(cred.Username, cred.Password))
	}
	if cred.IdentityToken != "" {
		fields[entryIdentityToken] = jsonString(cred.IdentityToken)
	}
	raw, err := json.Marshal(fields)
	if err != nil {
		return err
	}
	c.auths[key] = raw
	return nil
}

// stripEntries removes the secrets of registry's auths entries, dropping an
// entry that holds nothing else. It reports whether any entry held a
// credential and whether the file changed.
func (c *configFile) stripEntries(registry string) (hadCredential, changed bool, err error) {
	for _, key := range matchKeys(c.auths, registry) {
		e, err := decodeEntry(c.auths[key])
		if err != nil {
			return false, false, c.fault(fmt.Errorf("auths entry %q: %w", key, err))
		}
		if cred, err := e.credential(); err != nil || !cred.IsZero() {
			hadCredential = true // a malformed secret is still a login to undo
		}
		fields, err := entryFields(c.auths[key])
		if err != nil {
			return false, false, c.fault(fmt.Errorf("auths entry %q: %w", key, err))
		}
		n := len(fields)
		dropSecretFields(fields)
		switch {
		case len(fields) == 0:
			delete(c.auths, key)
			changed = true
		case len(fields) != n:
			raw, err := json.Marshal(fields)
			if err != nil {
				return false, false, err
			}
			c.auths[key] = raw
			changed = true
		}
	}
	return hadCredential, changed, nil
}

func entryFields(raw json.RawMessage) (map[string]json.RawMessage, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return nil, fmt.Errorf("must be an object: %w", err)
	}
	if fields == nil {
		fields = map[string]json.RawMessage{}
	}
	return fields, nil
}

// dropSecretFields removes the fields berth manages, in any letter case
// (encoding/json matches field names without regard to case).
func dropSecretFields(fields map[string]json.RawMessage) {
	for k := range fields {
		for _, s := range secretFields {
			if strings.EqualFold(k, s) {
				delete(fields, k)
			}
		}
	}
}

func jsonString(s string) json.RawMessage {
	b, _ := json.Marshal(s) // a string always marshals
	return b
}

// registries returns the registries with a credential in the auths entries.
func (c *configFile) registries() []string {
	seen := map[string]bool{}
	var out []string
	for key, raw := range c.auths {
		e, err := decodeEntry(raw)
		if err != nil {
			continue
		}
		if cred, err := e.credential(); err == nil && cred.IsZero() {
			continue
		}
		r := NormalizeRegistry(key)
		if r == "" || seen[strings.ToLower(r)] {
			continue
		}
		seen[strings.ToLower(r)] = true
		out = append(out, r)
	}
	slices.Sort(out)
	return out
}

// marshal renders the file: the fields as read, with auths as now held.
func (c *configFile) marshal() ([]byte, error) {
	top := maps.Clone(c.top)
	auths, err := json.Marshal(c.auths)
	if err != nil {
		return nil, err
	}
	top[fieldAuths] = auths
	b, err := json.MarshalIndent(top, "", "\t")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// writeFileAtomic replaces path with data: a temporary file in the same
// directory, mode 0600, synced, then renamed over path, then the directory
// synced. Missing directories are created with mode 0700.
func writeFileAtomic(path string, data []byte) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync() // best effort: not every file system syncs directories
		d.Close()
	}
	return nil
}

// realPath follows a symbolic link at path, so that rewriting a linked auth
// file replaces its target and keeps the link.
func realPath(path string) string {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		if p, err := filepath.EvalSymlinks(path); err == nil {
			return p
		}
	}
	return path
}
