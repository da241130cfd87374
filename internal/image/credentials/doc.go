// Package credentials finds, stores and erases registry credentials: the
// logins of "berth login" and "berth logout", and the credentials pulls and
// pushes authenticate with.
//
// # Registry keys
//
// A registry is named by its host[:port] as in image references (package
// reference): "docker.io" for Docker Hub, "registry.example.com:5000".
// Keys in files and arguments are normalised by NormalizeRegistry: a URL
// scheme and any path are dropped ("https://host/v2/" is "host"), and
// "index.docker.io", "registry-1.docker.io" and docker's
// "https://index.docker.io/v1/" all mean "docker.io". Host names compare
// without regard to case. When several keys of one file name the same
// registry, the key spelled exactly as the registry wins, then docker's
// server address for it (ServerURL), then the others in sorted order.
//
// # Files
//
// Berth's auth file is Options.AuthFile, else $BERTH_AUTH_FILE, else
// $XDG_CONFIG_HOME/berth/auth.json (an absolute XDG_CONFIG_HOME only),
// else $HOME/.config/berth/auth.json. Docker's config is
// Options.DockerConfigFile, else $DOCKER_CONFIG/config.json, else
// $HOME/.docker/config.json; berth reads it and never writes it.
//
// Both are docker's config.json format, of which berth uses:
//
//	{
//		"auths": {
//			"registry.example.com": {
//				"auth": "<base64 of username:password>",
//				"identitytoken": "<OAuth refresh token>"
//			},
//			"https://index.docker.io/v1/": {"username": "u", "password": "p"}
//		},
//		"credHelpers": {"ghcr.io": "pass"},
//		"credsStore": "secretservice"
//	}
//
// An auths entry's "auth" wins over its "username"/"password" fields (an
// older form, still read). A missing or empty file is an empty config. A
// file that is not valid JSON, or whose known fields have the wrong types,
// is a *ConfigError naming the file and how to fix it; it is never
// overwritten.
//
// # Lookup order
//
// Get (and Lookup, Find) try, and return the first credential found:
//
//  1. berth's auth file: the helper its credHelpers names for the
//     registry, then its credsStore helper, then its auths entry;
//  2. docker's config, in the same order.
//
// Nothing found is the zero Credential and a nil error; a helper that
// fails, or is configured but not installed (ErrHelperNotInstalled), is an
// error.
//
// # Credential helpers
//
// A helper "name" is the executable docker-credential-name, searched for in
// the directories of Options.HelperPath (default $PATH; empty elements,
// which would mean the working directory, are skipped). It speaks docker's
// protocol: "get" with the server address on stdin answers
// {"ServerURL","Username","Secret"} on stdout; "store" reads that JSON on
// stdin; "erase" reads the server address. A non-zero exit with
// "credentials not found in native keychain" in its output means the
// helper holds nothing (not an error). The server address is docker's
// (ServerURL: "https://index.docker.io/v1/" for Docker Hub, host[:port]
// otherwise), so berth and docker share a helper's entries; for Docker Hub
// "docker.io" is tried too on get and erase. The username "<token>" marks
// Secret as an identity token, both ways. Each run is bounded by
// Options.HelperTimeout (DefaultHelperTimeout); a helper that overruns is
// killed and reported as a *HelperError wrapping context.DeadlineExceeded.
// Helper errors carry the helper's stderr (or, for store and erase, the
// stdout of the failed run, where docker's helpers print errors), trimmed;
// the stdout of get, which may hold a secret, is never quoted.
//
// # Writing
//
// Store and Erase change only berth's auth file (or a helper it
// configures). Store uses the helper berth's file configures for the
// registry (credHelpers, else credsStore) and then strips any secret the
// file still keeps for it; without a helper it writes the auths entry:
// "auth" = base64("username:password") when either is set, "identitytoken"
// when set, and drops the old "username"/"password" fields. The entry keeps
// its existing key spelling and its other fields; duplicate keys for the
// registry are removed; a new entry's key is the registry host[:port].
// Erase removes the credential from the helper and the file; when berth
// holds none, its error wraps ErrNotLoggedIn and names the registry.
//
// Every rewrite is a read-modify-write under an exclusive flock(2) on the
// lock file "<auth file>.lock" beside it (mode 0600, never removed), so
// concurrent logins from any number of processes or Keychains lose no
// entry. The new content goes to a temporary file in the same directory,
// mode 0600, is fsynced and renamed over the auth file, and the directory
// is synced. Directories berth creates are mode 0700; existing ones are left
// as they are. A symbolic link at the auth file's path is followed, so the
// link survives. Top-level fields berth does not know, and unknown fields
// of entries, are written back unchanged; only "auths" is re-encoded.
//
// # Invariants
//
//   - Secrets never appear in error messages, and Credential's String and
//     GoString show none.
//   - Docker's config is never written.
//   - A Keychain caches nothing: every call reads the files afresh.
//     Its methods are safe for concurrent use.
//   - On platforms without flock(2) (not Linux or the BSDs), rewrites are
//     serialised within the process only.
package credentials
