package credentials

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// ErrNotLoggedIn is wrapped by Erase's error when berth holds no credential
// for the registry.
var ErrNotLoggedIn = errors.New("not logged in")

// Credential is what a registry login holds: a username and password, or
// an identity token (an OAuth refresh token, with or without the username
// it was issued to). The zero Credential is "no credential".
type Credential struct {
	Username      string
	Password      string
	IdentityToken string
}

// IsZero reports whether c holds nothing.
func (c Credential) IsZero() bool { return c == Credential{} }

// String shows the username and which secrets are set, never a secret.
func (c Credential) String() string {
	var parts []string
	if c.Username != "" {
		parts = append(parts, "user "+fmt.Sprintf("%q", c.Username))
	}
	if c.Password != "" {
		parts = append(parts, "password set")
	}
	if c.IdentityToken != "" {
		parts = append(parts, "identity token set")
	}
	if len(parts) == 0 {
		return "no credential"
	}
	return strings.Join(parts, ", ")
}

// GoString is String, so that %#v does not print secrets either.
func (c Credential) GoString() string { return "credentials.Credential{" + c.String() + "}" }

// Source says where a credential came from.
type Source struct {
	// File is the config file that held the credential, or that named
	// the helper that did.
	File string
	// Helper is the helper's name ("pass" for docker-credential-pass)
	// when a credential helper supplied the credential; "" when File held
	// it in its auths.
	Helper string
	// Docker is true when File is docker's config rather than berth's.
	Docker bool
}

// IsZero reports whether s is the zero Source (nothing found).
func (s Source) IsZero() bool { return s == Source{} }

// String describes the source for people, e.g.
// "credential helper docker-credential-pass (configured in /root/.config/berth/auth.json)".
func (s Source) String() string {
	switch {
	case s.IsZero():
		return "nowhere"
	case s.Helper != "":
		return fmt.Sprintf("credential helper %s%s (configured in %s)", HelperPrefix, s.Helper, s.File)
	}
	return s.File
}

// Options configure a Keychain. The zero Options mean berth's defaults for
// the current user.
type Options struct {
	// AuthFile is berth's auth file. "" means $BERTH_AUTH_FILE, else
	// $XDG_CONFIG_HOME/berth/auth.json, else $HOME/.config/berth/auth.json.
	AuthFile string
	// DockerConfigFile is docker's config.json. "" means
	// $DOCKER_CONFIG/config.json, else $HOME/.docker/config.json.
	DockerConfigFile string
	// NoDockerConfig leaves docker's config out of lookups.
	NoDockerConfig bool
	// Getenv looks up environment variables; nil means os.Getenv.
	Getenv func(string) string
	// HelperPath is the list of directories (PATH syntax) searched for
	// docker-credential-* helpers; "" means $PATH as Getenv gives it.
	HelperPath string
	// HelperTimeout bounds each run of a helper; 0 means
	// DefaultHelperTimeout.
	HelperTimeout time.Duration
}

// Keychain finds, stores and erases registry credentials. It holds no
// credentials itself: every call reads the files afresh, so a Keychain sees
// logins made by other processes. Its methods are safe for concurrent use.
type Keychain struct {
	authFile   string
	authErr    error  // why there is no authFile
	dockerFile string // "" when docker's config is not consulted
	path       string
	timeout    time.Duration
}

// New returns a Keychain for opts. Unknown locations are reported by the
// methods that need them, not here.
func New(opts Options) *Keychain {
	getenv := opts.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	k := &Keychain{authFile: opts.AuthFile, timeout: opts.HelperTimeout, path: opts.HelperPath}
	if k.timeout <= 0 {
		k.timeout = DefaultHelperTimeout
	}
	if k.path == "" {
		k.path = getenv("PATH")
	}
	home := getenv("HOME")
	if k.authFile == "" {
		switch xdg := getenv("XDG_CONFIG_HOME"); {
		case getenv("BERTH_AUTH_FILE") != "":
			k.authFile = getenv("BERTH_AUTH_FILE")
		case filepath.IsAbs(xdg): // the XDG spec: a relative value is ignored
			k.authFile = filepath.Join(xdg, "berth", "auth.json")
		case home != "":
			k.authFile = filepath.Join(home, ".config", "berth", "auth.json")
		default:
			k.authErr = errors.New("credentials: cannot place berth's auth file: set BERTH_AUTH_FILE, XDG_CONFIG_HOME or HOME")
		}
	}
	if !opts.NoDockerConfig {
		switch dir := getenv("DOCKER_CONFIG"); {
		case opts.DockerConfigFile != "":
			k.dockerFile = opts.DockerConfigFile
		case dir != "":
			k.dockerFile = filepath.Join(dir, "config.json")
		case home != "":
			k.dockerFile = filepath.Join(home, ".docker", "config.json")
		}
	}
	return k
}

// AuthFile returns the path of berth's auth file, or an error when no
// location is known (no BERTH_AUTH_FILE, XDG_CONFIG_HOME or HOME).
func (k *Keychain) AuthFile() (string, error) { return k.authFile, k.authErr }

// DockerConfigFile returns the path of docker's config.json that lookups
// read, or "" when none is consulted.
func (k *Keychain) DockerConfigFile() string { return k.dockerFile }

// Get returns the credential for registry (a host[:port] as in image
// references; other key forms are normalised, see NormalizeRegistry). It
// looks in berth's auth file (its credHelpers entry for the registry, then
// its credsStore, then its auths), then in docker's config in the same
// order, and returns the first credential found. Nothing found is the zero
// Credential and a nil error.
func (k *Keychain) Get(ctx context.Context, registry string) (Credential, error) {
	c, _, err := k.Find(ctx, registry)
	return c, err
}

// Lookup is Get in the shape registry clients want: the username and the
// secret to authenticate with. For an identity token it returns username ""
// and the token as secret (the token is then the secret for an OAuth
// refresh-token grant). Nothing found is "", "", nil.
func (k *Keychain) Lookup(ctx context.Context, registry string) (username, secret string, err error) {
	c, err := k.Get(ctx, registry)
	if err != nil {
		return "", "", err
	}
	if c.IdentityToken != "" {
		return "", c.IdentityToken, nil
	}
	return c.Username, c.Password, nil
}

// Find is Get that also says where the credential came from; the Source is
// zero when nothing was found.
func (k *Keychain) Find(ctx context.Context, registry string) (Credential, Source, error) {
	reg, err := checkRegistry(registry)
	if err != nil {
		return Credential{}, Source{}, err
	}
	if k.authErr == nil {
		c, src, err := k.findIn(ctx, k.authFile, false, reg)
		if err != nil || !c.IsZero() {
			return c, src, err
		}
	}
	if k.dockerFile != "" {
		return k.findIn(ctx, k.dockerFile, true, reg)
	}
	return Credential{}, Source{}, nil
}

func (k *Keychain) findIn(ctx context.Context, path string, docker bool, reg string) (Credential, Source, error) {
	cfg, err := readConfig(path, docker)
	if err != nil {
		return Credential{}, Source{}, err
	}
	var tried []string
	for _, h := range []string{cfg.credHelper(reg), cfg.credsStore} {
		if h == "" || slices.Contains(tried, h) {
			continue
		}
		tried = append(tried, h)
		c, ok, err := k.helperGet(ctx, h, reg)
		if err != nil {
			return Credential{}, Source{}, fmt.Errorf("%w (helper configured in %s)", err, path)
		}
		if ok {
			return c, Source{File: path, Helper: h, Docker: docker}, nil
		}
	}
	c, ok, err := cfg.lookupAuths(reg)
	if err != nil || !ok {
		return Credential{}, Source{}, err
	}
	return c, Source{File: path, Docker: docker}, nil
}

// Store saves c as the credential for registry in berth's auth file, or,
// when that file configures a helper for the registry (credHelpers, else
// credsStore), in that helper; a helper store also removes any secret the
// file's auths still hold for the registry. Docker's config is never
// written. The file is rewritten atomically under its lock, keeping every
// other entry and every field berth does not know.
func (k *Keychain) Store(ctx context.Context, registry string, c Credential) error {
	reg, err := checkRegistry(registry)
	if err != nil {
		return err
	}
	if c.IsZero() {
		return fmt.Errorf("credentials: nothing to store for %s: give a username and password or an identity token", reg)
	}
	if strings.Contains(c.Username, ":") {
		return fmt.Errorf("credentials: username %q for %s contains ':', which the auth file's \"user:password\" encoding cannot hold", c.Username, reg)
	}
	return k.update(ctx, func(cfg *configFile) (bool, error) {
		if h := cfg.helperFor(reg); h != "" {
			if err := k.helperStore(ctx, h, reg, c); err != nil {
				return false, fmt.Errorf("%w (helper configured in %s)", err, cfg.path)
			}
			_, changed, err := cfg.stripEntries(reg)
			return changed, err
		}
		return true, cfg.setEntry(reg, c)
	})
}

// Erase removes berth's credential for registry: from the helper berth's
// auth file configures for it, and from the file's auths. When berth holds
// none it returns an error wrapping ErrNotLoggedIn that names the registry
// (and says so when docker's config, which berth never changes, still has
// one).
func (k *Keychain) Erase(ctx context.Context, registry string) error {
	reg, err := checkRegistry(registry)
	if err != nil {
		return err
	}
	found := false
	err = k.update(ctx, func(cfg *configFile) (bool, error) {
		if h := cfg.helperFor(reg); h != "" {
			ok, err := k.helperErase(ctx, h, reg)
			if err != nil {
				return false, fmt.Errorf("%w (helper configured in %s)", err, cfg.path)
			}
			found = found || ok
		}
		had, changed, err := cfg.stripEntries(reg)
		found = found || had
		return changed, err
	})
	if err != nil || found {
		return err
	}
	msg := fmt.Sprintf("credentials: %s: %v (berth's auth file is %s)", reg, ErrNotLoggedIn, k.authFile)
	if k.dockerFile != "" {
		if c, _, err := k.findIn(ctx, k.dockerFile, true, reg); err == nil && !c.IsZero() {
			msg += fmt.Sprintf(`; docker's config %s has a login for it, which berth only reads: use "docker logout %s"`, k.dockerFile, reg)
		}
	}
	return notLoggedInError{msg, ErrNotLoggedIn}
}

// notLoggedInError is Erase's error: its own message, wrapping ErrNotLoggedIn.
type notLoggedInError struct {
	msg  string
	wrap error
}

func (e notLoggedInError) Error() string { return e.msg }
func (e notLoggedInError) Unwrap() error { return e.wrap }

// Registries returns the registries berth's auth file holds a credential
// for in its auths (credentials kept only by a helper are not listed), in
// sorted order.
func (k *Keychain) Registries() ([]string, error) {
	if k.authErr != nil {
		return nil, k.authErr
	}
	cfg, err := readConfig(k.authFile, false)
	if err != nil {
		return nil, err
	}
	return cfg.registries(), nil
}

// update runs a read-modify-write of berth's auth file under its lock; fn
// reports whether it changed the file.
func (k *Keychain) update(ctx context.Context, fn func(*configFile) (bool, error)) error {
	if k.authErr != nil {
		return k.authErr
	}
	path := realPath(k.authFile)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("credentials: create the directory of berth's auth file: %w", err)
	}
	unlock, err := lockFile(ctx, path+".lock")
	if err != nil {
		return fmt.Errorf("credentials: lock berth's auth file %s: %w", path, err)
	}
	defer unlock()
	cfg, err := readConfig(path, false)
	if err != nil {
		return err
	}
	changed, err := fn(cfg)
	if err != nil || !changed {
		return err
	}
	data, err := cfg.marshal()
	if err != nil {
		return err
	}
	if err := writeFileAtomic(path, data); err != nil {
		return fmt.Errorf("credentials: write berth's auth file: %w", err)
	}
	return nil
}
