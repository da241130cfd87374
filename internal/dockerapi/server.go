//go:build linux

// Package dockerapi serves the Docker Engine API over berth's engine, image
// store and networks: what `berth serve` listens with on its docker
// socket, so that the docker CLI, compose and testcontainers work
// unchanged. The types are the moby API module's; the router and the
// handlers are berth's. There is one set of objects: a container made
// through the API is the one `berth ps` lists, and the other way round.
//
// Invariants: a handler never holds an engine lock across a response
// write (the engine takes and releases its own); every error reaches the
// client as docker's {"message": ...} body with docker's status for its
// category (not found 404, invalid 400, conflict 409, not modified 304);
// request bodies are bounded (maxBody).
package dockerapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/engine/store"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/network"
	"github.com/berth-dev/berth/internal/trace"
	"github.com/moby/moby/api/types/container"
	mobyimage "github.com/moby/moby/api/types/image"
	mobynet "github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/volume"
)

// The API versions served: the newest (advertised by /_ping and
// /version) and the oldest a client may ask for.
const (
	APIVersion    = "1.47"
	MinAPIVersion = "1.24"
)

// maxBody bounds a JSON request body.
const maxBody = 4 << 20

// Server is the Docker API over one engine.
type Server struct {
	e       *engine.Engine
	version string // berth's
	log     *slog.Logger
	views   Views
	mux     *http.ServeMux

	mu         sync.Mutex
	pending    map[string][]*attachment // by container ID: attaches held until its start
	execs      map[string]*execRecord
	restarting map[string]int // by container ID: restarts under way (see inspectContainer)
}

// Views are the docker-shaped views of berth's objects: the CLI's inspect
// mapping (internal/cli), given here so that `berth inspect` and the API
// print the same objects.
type Views struct {
	Container func(context.Context, *engine.Engine, *engine.Container) container.InspectResponse
	Summary   func(context.Context, *engine.Engine, *engine.Container, time.Time) container.Summary
	Image     func(context.Context, *image.Service, string) (mobyimage.InspectResponse, error)
	Network   func(context.Context, *engine.Engine, *network.Config) mobynet.Inspect
	Volume    func(*engine.Volume) volume.Volume
}

// New returns the API over e; version is berth's own, for /version.
func New(e *engine.Engine, version string, log *slog.Logger, views Views) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{e: e, version: version, log: log, views: views, mux: http.NewServeMux(), pending: map[string][]*attachment{}, execs: map[string]*execRecord{}, restarting: map[string]int{}}
	s.routes()
	return s
}

// versionPrefix is docker's /v{version:[0-9.]+}: "/v1" and "/v1.47.0"
// name versions too (too old, and 1.47).
var versionPrefix = regexp.MustCompile(`^/v([0-9][0-9.]*)(/|$)`)

// ServeHTTP strips the /vX.Y prefix (every route is served with and
// without one), refuses versions out of range, and dispatches.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Api-Version", APIVersion)
	w.Header().Set("Server", "berth/"+s.version+" (linux)")
	w.Header().Set("Docker-Experimental", "false")
	w.Header().Set("Ostype", "linux")
	path, err := stripVersion(r.URL.Path)
	if err != nil {
		writeError(w, err)
		return
	}
	if path != r.URL.Path {
		if m := versionPrefix.FindStringSubmatch(r.URL.Path); m != nil {
			r = r.WithContext(context.WithValue(r.Context(), apiVersionKey{}, m[1]))
		}
		r.URL.Path, r.URL.RawPath = path, ""
	}
	if trace.On {
		trace.Phase("api " + r.Method + " " + path)
		defer trace.Phase("api-done " + r.Method + " " + path)
	}
	s.mux.ServeHTTP(w, r)
}

type apiVersionKey struct{}

// requestVersion is the API version the request's path named (its
// /vX.Y), or the server's current one for a path without one, as
// dockerd reads an unversioned request.
func requestVersion(r *http.Request) string {
	if v, _ := r.Context().Value(apiVersionKey{}).(string); v != "" {
		return v
	}
	return APIVersion
}

// stripVersion is path without its /vX.Y prefix, or docker's refusal of
// a version out of range.
func stripVersion(path string) (string, error) {
	m := versionPrefix.FindStringSubmatch(path)
	if m == nil {
		return path, nil
	}
	if versionLess(APIVersion, m[1]) {
		return "", httpError{http.StatusBadRequest, fmt.Sprintf("client version %s is too new. Maximum supported API version is %s", m[1], APIVersion)}
	}
	if versionLess(m[1], MinAPIVersion) {
		return "", httpError{http.StatusBadRequest, fmt.Sprintf("client version %s is too old. Minimum supported API version is %s, please upgrade your client to a newer version", m[1], MinAPIVersion)}
	}
	return "/" + strings.TrimPrefix(path[len(m[0]):], "/"), nil
}

// versionLess compares dotted versions part by part, a missing or empty
// part as 0 ("1" < "1.24", "1.47.0" = "1.47"). Parts are compared as
// numbers of any length: "/v99999999999999999999.0" is too new, not a
// number that overflowed to something old.
func versionLess(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := range max(len(pa), len(pb)) {
		x, y := "", ""
		if i < len(pa) {
			x = strings.TrimLeft(pa[i], "0")
		}
		if i < len(pb) {
			y = strings.TrimLeft(pb[i], "0")
		}
		if len(x) != len(y) {
			return len(x) < len(y)
		}
		if x != y {
			return x < y
		}
	}
	return false
}

func (s *Server) routes() {
	h := func(pattern string, fn func(w http.ResponseWriter, r *http.Request) error) {
		s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			err := fn(w, r)
			if err != nil {
				if statusOf(err) >= http.StatusInternalServerError {
					s.log.Warn("request failed", "method", r.Method, "path", r.URL.Path, "err", err, "took", time.Since(start))
				}
				writeError(w, err)
			}
			// A streaming request's time is its stream's (logs -f,
			// events, attach): at debug, for finding where time goes.
			if s.log.Enabled(r.Context(), slog.LevelDebug) {
				s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "err", err, "took", time.Since(start))
			}
		})
	}
	h("GET /_ping", s.ping)
	h("HEAD /_ping", s.ping)
	h("GET /version", s.versionInfo)
	h("GET /info", s.info)
	h("GET /events", s.systemEvents)
	h("GET /system/df", s.diskUsage)
	h("POST /auth", s.checkAuth)

	h("GET /containers/json", s.listContainers)
	h("POST /containers/create", s.createContainer)
	h("GET /containers/{id}/json", s.inspectContainer)
	h("POST /containers/{id}/start", s.startContainer)
	h("POST /containers/{id}/stop", s.stopContainer)
	h("POST /containers/{id}/restart", s.restartContainer)
	h("POST /containers/{id}/kill", s.killContainer)
	h("POST /containers/{id}/wait", s.waitContainer)
	h("POST /containers/{id}/pause", s.pauseContainer)
	h("POST /containers/{id}/unpause", s.unpauseContainer)
	h("POST /containers/{id}/rename", s.renameContainer)
	h("GET /containers/{id}/logs", s.containerLogs)
	h("POST /containers/{id}/attach", s.attachContainer)
	h("POST /containers/{id}/exec", s.createExec)
	h("POST /exec/{id}/start", s.startExec)
	h("GET /exec/{id}/json", s.inspectExec)
	h("POST /exec/{id}/resize", s.resizeExec)
	h("POST /containers/{id}/resize", s.resizeContainer)
	h("DELETE /containers/{id}", s.removeContainer)

	h("GET /images/json", s.listImages)
	h("POST /images/create", s.pullImage)
	h("POST /images/load", s.loadImages)
	h("GET /distribution/{rest...}", s.distributionInspect)
	h("GET /images/{rest...}", s.imageGet)
	h("POST /images/{rest...}", s.imagePost)
	h("DELETE /images/{rest...}", s.removeImage)
	h("GET /containers/{id}/stats", s.containerStats)
	h("GET /containers/{id}/archive", s.archiveGet)
	h("HEAD /containers/{id}/archive", s.archiveGet)
	h("PUT /containers/{id}/archive", s.archivePut)
	h("GET /containers/{id}/top", s.topContainer)
	h("GET /containers/{id}/changes", s.containerChanges)
	h("GET /containers/{id}/export", s.exportContainer)
	h("POST /containers/{id}/update", s.updateContainer)
	h("POST /containers/prune", s.pruneContainers)
	h("POST /commit", s.commitContainer)
	h("POST /networks/prune", s.pruneNetworks)
	h("POST /volumes/prune", s.pruneVolumes)
	h("POST /images/prune", s.pruneImages)

	h("GET /networks", s.listNetworks)
	h("GET /networks/{id}", s.inspectNetwork)
	h("POST /networks/create", s.createNetwork)
	h("DELETE /networks/{id}", s.removeNetwork)
	h("POST /networks/{id}/connect", s.connectNetwork)
	h("POST /networks/{id}/disconnect", s.disconnectNetwork)
	h("GET /volumes", s.listVolumes)
	h("GET /volumes/{name}", s.inspectVolume)
	h("POST /volumes/create", s.createVolume)
	h("DELETE /volumes/{name}", s.removeVolume)

	// What berth does not do, said by name rather than a bare 404 the
	// CLI would print as "page not found".
	s.mux.HandleFunc("POST /build", notSupported("berth does not build images: build with buildah, kaniko or docker buildx and another builder, then berth load or pull the result"))
	s.mux.HandleFunc("POST /session", notSupported("berth does not build images (no BuildKit session)"))
	s.mux.HandleFunc("GET /images/search", notSupported("berth does not search registries: browse the registry's own web pages or its API"))
	s.mux.HandleFunc("GET /plugins", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, []any{}) })
	// No plugin exists: inspecting one is "not found" (the CLI's inspect
	// of a name tries plugins too, and goes on at a 404), installing one
	// is not supported.
	s.mux.HandleFunc("GET /plugins/{name}/json", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, httpError{http.StatusNotFound, fmt.Sprintf("plugin %q not found", r.PathValue("name"))})
	})
	s.mux.HandleFunc("/plugins/", notSupported("berth has no engine plugins: networks are CNI's and volumes local"))

	// What a dockerd outside a swarm answers.
	for _, p := range []string{"/swarm", "/nodes", "/services", "/tasks", "/secrets", "/configs"} {
		s.mux.HandleFunc(p+"/", notSwarm)
		s.mux.HandleFunc(p, notSwarm)
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		// Logged: a client (compose, testcontainers) that gets this is
		// using a route berth has yet to serve.
		s.log.Warn("unhandled route", "method", r.Method, "path", r.URL.Path, "agent", r.UserAgent())
		writeError(w, httpError{http.StatusNotFound, "page not found"})
	})
}

// notSupported answers 501 with why.
func notSupported(why string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, httpError{http.StatusNotImplemented, why})
	}
}

func notSwarm(w http.ResponseWriter, _ *http.Request) {
	writeError(w, httpError{http.StatusServiceUnavailable, "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again."})
}

// httpError is an error with its status.
type httpError struct {
	status int
	msg    string
}

func (e httpError) Error() string { return e.msg }

// statusOf maps the engine's error categories to docker's statuses.
func statusOf(err error) int {
	var he httpError
	switch {
	case errors.As(err, &he):
		return he.status
	case errors.Is(err, store.ErrNotFound), errors.Is(err, image.ErrNotFound), errors.Is(err, network.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, engine.ErrAlreadyRunning):
		return http.StatusNotModified
	case errors.Is(err, engine.ErrInvalidState), errors.Is(err, store.ErrNameInUse), errors.Is(err, network.ErrInUse), errors.Is(err, network.ErrExists), errors.Is(err, engine.ErrPortAllocated):
		return http.StatusConflict
	case errors.Is(err, engine.ErrInvalid), errors.Is(err, network.ErrInvalid), errors.Is(err, image.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, engine.ErrLogNotReadable):
		return http.StatusNotImplemented
	case errors.Is(err, context.Canceled):
		return 499
	}
	return http.StatusInternalServerError
}

func writeError(w http.ResponseWriter, err error) {
	status := statusOf(err)
	if status == http.StatusNotModified {
		w.WriteHeader(status)
		return
	}
	writeJSON(w, status, map[string]string{"message": err.Error()})
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

// decodeBody reads a bounded JSON body into v; an empty body leaves v.
func decodeBody(r *http.Request, v any) error {
	body := http.MaxBytesReader(nil, r.Body, maxBody)
	data, err := io.ReadAll(body)
	if err != nil {
		return httpError{http.StatusBadRequest, "request body: " + err.Error()}
	}
	if len(strings.TrimSpace(string(data))) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, v); err != nil {
		return httpError{http.StatusBadRequest, "invalid JSON: " + err.Error()}
	}
	return nil
}

// boolParam is docker's boolean query value: 1, true, True... or absent.
func boolParam(r *http.Request, k string) bool {
	v := strings.ToLower(r.URL.Query().Get(k))
	return v != "" && v != "0" && v != "false" && v != "no"
}

// filters decodes docker's ?filters= (map of lists, or the older map of
// maps).
func filters(r *http.Request) (map[string][]string, error) {
	raw := r.URL.Query().Get("filters")
	out := map[string][]string{}
	if raw == "" {
		return out, nil
	}
	if err := json.Unmarshal([]byte(raw), &out); err == nil {
		return out, nil
	}
	var old map[string]map[string]bool
	if err := json.Unmarshal([]byte(raw), &old); err != nil {
		return nil, httpError{http.StatusBadRequest, "invalid filters: " + raw}
	}
	for k, set := range old {
		for v, on := range set {
			if on {
				out[k] = append(out[k], v)
			}
		}
	}
	return out, nil
}

// contextUntil is ctx ending at t too.
func contextUntil(ctx context.Context, t time.Time) (context.Context, context.CancelFunc) {
	return context.WithDeadline(ctx, t)
}
