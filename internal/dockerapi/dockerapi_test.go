//go:build linux

package dockerapi

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/engine/store"
	"github.com/berth-dev/berth/internal/image/remote"
	"github.com/berth-dev/berth/internal/network"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
)

func TestVersionLess(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		less bool
	}{{"1.24", "1.47", true}, {"1.47", "1.47", false}, {"1.9", "1.10", true}, {"2.0", "1.99", false},
		{"1", "1.24", true}, {"1.47.0", "1.47", false}, {"1.47", "1.47.0", false}, {"1.047", "1.47", false},
		{"1.47", "99999999999999999999.0", true}, {"99999999999999999999.0", "1.47", false}, {"1..2", "1.0.3", true}} {
		if got := versionLess(tc.a, tc.b); got != tc.less {
			t.Errorf("versionLess(%s, %s) = %v", tc.a, tc.b, got)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"10m": 10 << 20, "1g": 1 << 30, "512k": 512 << 10, "10mb": 10 << 20, "123": 123, "7b": 7} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "m", "-1m", "ten"} {
		if _, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q) took it", bad)
		}
	}
}

// The /vX.Y prefix: served in range, refused by name out of it, and a
// path that only looks like one is an unknown route.
func TestVersionPrefix(t *testing.T) {
	s := New(nil, "test", nil, Views{})
	for _, tc := range []struct {
		path string
		code int
		body string
	}{
		{"/_ping", 200, "OK"},
		{"/v1.47/_ping", 200, "OK"},
		{"/v" + MinAPIVersion + "/_ping", 200, "OK"},
		{"/v1.47.0/_ping", 200, "OK"},
		{"/v1.48/_ping", 400, "client version 1.48 is too new. Maximum supported API version is " + APIVersion},
		{"/v2/_ping", 400, "is too new"},
		{"/v99999999999999999999.0/_ping", 400, "is too new"},
		{"/v1.23/_ping", 400, "client version 1.23 is too old. Minimum supported API version is " + MinAPIVersion},
		{"/v1/_ping", 400, "client version 1 is too old"},
		{"/v0.0/_ping", 400, "is too old"},
		{"/v1.47x/_ping", 404, "page not found"},
		{"/vX.Y/_ping", 404, "page not found"},
		{"/V1.47/_ping", 404, "page not found"},
		{"/v1.47", 404, "page not found"},
		{"/v1.47/no/such/route", 404, "page not found"},
		{"/v1.47/v1.47/_ping", 404, "page not found"},
	} {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, httptest.NewRequest("GET", tc.path, nil))
		if w.Code != tc.code || !strings.Contains(w.Body.String(), tc.body) {
			t.Errorf("GET %s: %d %q, want %d with %q", tc.path, w.Code, w.Body.String(), tc.code, tc.body)
		}
		if w.Code >= 400 && !strings.HasPrefix(w.Body.String(), `{"message":`) {
			t.Errorf("GET %s: %q is not docker's error body", tc.path, w.Body.String())
		}
	}
	// A known path with a method it does not take: docker's 404 in its
	// JSON body, not the router's plain-text 405.
	for _, m := range []string{"PUT /_ping", "DELETE /version", "POST /info", "PATCH /v1.47/_ping"} {
		method, path, _ := strings.Cut(m, " ")
		w := httptest.NewRecorder()
		s.ServeHTTP(w, httptest.NewRequest(method, path, nil))
		if w.Code != 404 || w.Body.String() != "{\"message\":\"page not found\"}\n" {
			t.Errorf("%s: %d %q, want docker's 404", m, w.Code, w.Body.String())
		}
	}
}

// FuzzVersionPrefix: no path makes the version check panic; a path it
// lets through is the path after its prefix, which the router then sees.
func FuzzVersionPrefix(f *testing.F) {
	for _, p := range []string{"/v1.47/_ping", "/v1/x", "/v99999999999999999999.0/", "/v..../_ping", "/v1.47", "/v1.24//x"} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, path string) {
		rest, err := stripVersion(path)
		if err != nil {
			if statusOf(err) != 400 || !strings.Contains(err.Error(), "client version") {
				t.Errorf("%q: %v (status %d)", path, err, statusOf(err))
			}
			return
		}
		if rest == path {
			return
		}
		if !strings.HasPrefix(rest, "/") || !strings.HasPrefix(path, "/v") || !strings.HasSuffix(path, strings.TrimPrefix(rest, "/")) {
			t.Errorf("%q became %q", path, rest)
		}
	})
}

// The create request the docker CLI sends maps onto the engine's options.
func TestCreateOptions(t *testing.T) {
	body := `{"Image":"busybox","Cmd":["sh","-c","true"],"Env":["A=1"],"Labels":{"k":"v"},"Tty":true,"OpenStdin":true,
	 "ExposedPorts":{"9000/tcp":{}},"Healthcheck":{"Test":["CMD","curl","-f","http://x/"],"Interval":1000000000,"Retries":2,"StartPeriod":30000000000,"StartInterval":100000000},
	 "HostConfig":{"Binds":["/a:/b:ro"],"NetworkMode":"default","PortBindings":{"80/tcp":[{"HostIp":"127.0.0.1","HostPort":"8080"}],"53/udp":[{"HostPort":""}]},
	  "RestartPolicy":{"Name":"on-failure","MaximumRetryCount":3},"AutoRemove":true,"Memory":1048576,"NanoCpus":1500000000,
	  "Mounts":[{"Type":"volume","Source":"data","Target":"/data"},{"Type":"tmpfs","Target":"/tmp"}],
	  "LogConfig":{"Type":"json-file","Config":{"max-size":"10m","max-file":"2"}},"CpuShares":512,"Dns":["192.0.2.1"]},
	 "NetworkingConfig":{"EndpointsConfig":{"bridge":{"Aliases":["web"]}}}}`
	var req container.CreateRequest
	if err := json.Unmarshal([]byte(body), &req); err != nil {
		t.Fatal(err)
	}
	o, err := createOptions("named", &req)
	if err != nil {
		t.Fatal(err)
	}
	if o.Name != "named" || o.Image != "busybox" || !reflect.DeepEqual(o.Cmd, []string{"sh", "-c", "true"}) || !o.Tty || !o.OpenStdin || o.Labels["k"] != "v" {
		t.Errorf("config: %+v", o)
	}
	if o.NetworkMode != "bridge" || !reflect.DeepEqual(o.Aliases, []string{"web"}) || !reflect.DeepEqual(o.DNS, []string{"192.0.2.1"}) {
		t.Errorf("network: %q %q %q", o.NetworkMode, o.Aliases, o.DNS)
	}
	wantPorts := []network.PortMapping{{ContainerPort: 53, Protocol: "udp"}, {HostIP: "127.0.0.1", HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}}
	if !reflect.DeepEqual(o.Ports, wantPorts) {
		t.Errorf("ports %+v, want %+v", o.Ports, wantPorts)
	}
	if !reflect.DeepEqual(o.Binds, []string{"/a:/b:ro", "data:/data"}) || !reflect.DeepEqual(o.Tmpfs, []string{"/tmp"}) {
		t.Errorf("mounts: %q %q", o.Binds, o.Tmpfs)
	}
	if o.Restart.Name != "on-failure" || o.Restart.MaximumRetryCount != 3 || !o.AutoRemove || o.Memory != 1<<20 || o.CPUs != 1.5 {
		t.Errorf("host: %+v", o)
	}
	if o.LogMaxSize != 10<<20 || o.LogMaxFiles != 2 || o.Resources.CPUShares != 512 || !reflect.DeepEqual(o.Expose, []string{"9000/tcp"}) {
		t.Errorf("logs/resources: %d %d %+v %q", o.LogMaxSize, o.LogMaxFiles, o.Resources, o.Expose)
	}
	if o.HealthCmd != "'curl' '-f' 'http://x/'" || o.HealthRetries != 2 || o.HealthStartPeriod != 30*time.Second || o.HealthStartInterval != 100*time.Millisecond {
		t.Errorf("healthcheck: %q %d %s %s", o.HealthCmd, o.HealthRetries, o.HealthStartPeriod, o.HealthStartInterval)
	}
	// Refused by name, never dropped.
	for _, bad := range []string{
		`{"Image":"x","HostConfig":{"DeviceRequests":[{"Count":1}]}}`,
		`{"Image":"x","HostConfig":{"VolumeDriver":"nfs"}}`,
		`{"Image":"x","HostConfig":{"StorageOpt":{"size":"1G"}}}`,
		`{"Image":"x","HostConfig":{"Runtime":"kata"}}`,
		`{"Image":"x","HostConfig":{"MemorySwappiness":10}}`,
		`{"Image":"x","HostConfig":{"LogConfig":{"Type":"syslog"}}}`,
		`{"Image":"x","HostConfig":{"Mounts":[{"Type":"npipe","Target":"/x"}]}}`,
		`{"Image":"x","HostConfig":{"NetworkMode":"host"},"NetworkingConfig":{"EndpointsConfig":{"other":{}}}}`,
		`{"Image":"x","HostConfig":{"NetworkMode":"none"},"NetworkingConfig":{"EndpointsConfig":{"other":{}}}}`,
		`{"Image":"x","HostConfig":{"NetworkMode":"container:db"},"NetworkingConfig":{"EndpointsConfig":{"other":{}}}}`,
	} {
		var req container.CreateRequest
		if err := json.Unmarshal([]byte(bad), &req); err != nil {
			t.Fatal(err)
		}
		if _, err := createOptions("", &req); err == nil {
			t.Errorf("%s was taken", bad)
		}
	}
}

// Without a network mode, the one endpoint names the network (what
// testcontainers sends where no network is called bridge).
func TestCreateOptionsEndpointNamesNetwork(t *testing.T) {
	var req container.CreateRequest
	body := `{"Image":"x","HostConfig":{"NetworkMode":""},"NetworkingConfig":{"EndpointsConfig":{"reaper_default":{"Aliases":["db"]}}}}`
	if err := json.Unmarshal([]byte(body), &req); err != nil {
		t.Fatal(err)
	}
	o, err := createOptions("", &req)
	if err != nil {
		t.Fatal(err)
	}
	if o.NetworkMode != "reaper_default" || !reflect.DeepEqual(o.Aliases, []string{"db"}) {
		t.Errorf("network mode %q, aliases %q; want reaper_default, [db]", o.NetworkMode, o.Aliases)
	}
}

// docker run -v /path sends Config.Volumes: an anonymous volume, unless
// something is mounted there already; a plain runc runtime and a local
// volume driver are berth's own.
func TestCreateOptionsVolumes(t *testing.T) {
	body := `{"Image":"x","Volumes":{"/data":{},"/b":{},"/t":{}},"HostConfig":{"Binds":["/host:/b"],"Tmpfs":{"/t":""},"Runtime":"runc","VolumeDriver":"local","MemorySwappiness":-1}}`
	var req container.CreateRequest
	if err := json.Unmarshal([]byte(body), &req); err != nil {
		t.Fatal(err)
	}
	o, err := createOptions("", &req)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(o.Binds, []string{"/host:/b", "/data"}) {
		t.Errorf("binds %q, want the bind and an anonymous volume on /data", o.Binds)
	}
}

// compose (API 1.44+) creates a container of a service on several
// networks with one endpoint each: the NetworkMode's gives the first
// network's settings, the others are joined too, in name order.
func TestCreateOptionsEndpoints(t *testing.T) {
	body := `{"Image":"x","HostConfig":{"NetworkMode":"p_front"},"NetworkingConfig":{"EndpointsConfig":{
	 "p_front":{"Aliases":["web","p-web-1"],"IPAMConfig":{"IPv4Address":"10.1.0.9"}},
	 "p_zback":{"Aliases":["web"]},
	 "p_back":{"MacAddress":"02:42:ac:11:00:02"}}}}`
	var req container.CreateRequest
	if err := json.Unmarshal([]byte(body), &req); err != nil {
		t.Fatal(err)
	}
	o, err := createOptions("", &req)
	if err != nil {
		t.Fatal(err)
	}
	if o.NetworkMode != "p_front" || !reflect.DeepEqual(o.Aliases, []string{"web", "p-web-1"}) || o.IP != "10.1.0.9" {
		t.Errorf("first network: %q %q %q", o.NetworkMode, o.Aliases, o.IP)
	}
	want := []engine.NetworkRequest{{Name: "p_back", MAC: "02:42:ac:11:00:02"}, {Name: "p_zback", Aliases: []string{"web"}}}
	if !reflect.DeepEqual(o.ExtraNetworks, want) {
		t.Errorf("more networks: %+v, want %+v", o.ExtraNetworks, want)
	}
}

// A tmpfs in HostConfig.Mounts keeps its size, mode and options (compose
// sends its tmpfs: size and mode so); what a tmpfs cannot have is refused.
func TestTmpfsMount(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`{"Type":"tmpfs","Target":"/t"}`, "/t"},
		{`{"Type":"tmpfs","Target":"/t","ReadOnly":true,"TmpfsOptions":{"SizeBytes":1048576,"Mode":1023,"Options":[["exec"],["uid","1000"]]}}`, "/t:ro,size=1048576,mode=1777,exec,uid=1000"},
	} {
		var m mount.Mount
		if err := json.Unmarshal([]byte(tc.body), &m); err != nil {
			t.Fatal(err)
		}
		if got, err := tmpfsMount(m); err != nil || got != tc.want {
			t.Errorf("tmpfsMount(%s) = %q, %v; want %q", tc.body, got, err, tc.want)
		}
	}
	for _, bad := range []string{
		`{"Type":"tmpfs","Source":"/host","Target":"/t"}`,
		`{"Type":"tmpfs","Target":"/t","BindOptions":{}}`,
		`{"Type":"tmpfs","Target":"/t","TmpfsOptions":{"SizeBytes":-1}}`,
		`{"Type":"tmpfs","Target":"/t","TmpfsOptions":{"Options":[["a","b","c"]]}}`,
		`{"Type":"tmpfs","Target":"/t","TmpfsOptions":{"Options":[["a,b"]]}}`,
	} {
		var m mount.Mount
		if err := json.Unmarshal([]byte(bad), &m); err != nil {
			t.Fatal(err)
		}
		if got, err := tmpfsMount(m); err == nil {
			t.Errorf("tmpfsMount(%s) took it: %q", bad, got)
		}
	}
}

// An archive body is a tar, plain or compressed; xz is refused by name.
func TestArchiveDecompressed(t *testing.T) {
	var plain bytes.Buffer
	tw := tar.NewWriter(&plain)
	tw.WriteHeader(&tar.Header{Name: "f", Mode: 0o644, Size: 2})
	tw.Write([]byte("hi"))
	tw.Close()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(plain.Bytes())
	zw.Close()
	// The standard library reads bzip2 but cannot write it.
	bzip := exec.Command("bzip2", "-c")
	bzip.Stdin = bytes.NewReader(plain.Bytes())
	bz, bzErr := bzip.Output()
	for name, body := range map[string][]byte{"plain": plain.Bytes(), "gzip": gz.Bytes(), "bzip2": bz} {
		if name == "bzip2" && bzErr != nil {
			t.Logf("bzip2 case skipped: no bzip2 command (%v)", bzErr)
			continue
		}
		rc, err := decompressed(bytes.NewReader(body))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, plain.Bytes()) {
			t.Errorf("%s: %d bytes, %v; want the %d of the tar", name, len(got), err, plain.Len())
		}
	}
	xz := []byte{0xfd, '7', 'z', 'X', 'Z', 0x00, 0, 0}
	if _, err := decompressed(bytes.NewReader(xz)); err == nil || statusOf(err) != 400 || !strings.Contains(err.Error(), "xz") {
		t.Errorf("xz body: %v (status %d), want a 400 naming xz", err, statusOf(err))
	}
}

// FuzzCreateRequest: no body makes the decoding and mapping panic.
func FuzzCreateRequest(f *testing.F) {
	f.Add(`{"Image":"busybox","HostConfig":{"PortBindings":{"80/tcp":[{"HostPort":"1-2"}]}}}`)
	f.Add(`{"Image":"x","Healthcheck":{"Test":["CMD"]},"HostConfig":{"Tmpfs":{"/t":""},"Ulimits":[{"Name":"nofile","Soft":1,"Hard":2}]}}`)
	f.Add(`{"Image":"x","HostConfig":{"LogConfig":{"Config":{"max-size":"k"}}}}`)
	f.Add(`[]`)
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest("POST", "/containers/create", strings.NewReader(body))
		var req container.CreateRequest
		if err := decodeBody(r, &req); err != nil || req.Config == nil {
			return
		}
		createOptions("", &req)
	})
}

func TestRequestCredentials(t *testing.T) {
	fallback := remote.StaticCredentials{"reg.example:5000": {"fall", "back"}}
	c := remote.RequestCredentials{Fallback: fallback}
	auth := func(a registryAuth) context.Context {
		b, _ := json.Marshal(a)
		r := httptest.NewRequest("POST", "/images/create", nil)
		r.Header.Set("X-Registry-Auth", base64.URLEncoding.EncodeToString(b))
		ctx, err := withRegistryAuth(r)
		if err != nil {
			t.Fatal(err)
		}
		return ctx
	}
	for _, tc := range []struct {
		ctx            context.Context
		registry, user string
	}{
		{context.Background(), "reg.example:5000", "fall"},
		{auth(registryAuth{Username: "alice", Password: "pw", ServerAddress: "reg.example:5000"}), "reg.example:5000", "alice"},
		{auth(registryAuth{Username: "alice", Password: "pw", ServerAddress: "other.example"}), "reg.example:5000", "fall"},
		{auth(registryAuth{Username: "bob", Password: "pw"}), "reg.example:5000", "bob"},
		{auth(registryAuth{Username: "hub", Password: "pw", ServerAddress: "https://index.docker.io/v1/"}), "registry-1.docker.io", "hub"},
		{auth(registryAuth{}), "reg.example:5000", "fall"},
	} {
		if user, _, _ := c.Get(tc.ctx, tc.registry); user != tc.user {
			t.Errorf("credentials for %s: %q, want %q", tc.registry, user, tc.user)
		}
	}
	r := httptest.NewRequest("POST", "/images/create", nil)
	r.Header.Set("X-Registry-Auth", "!!!")
	if _, err := withRegistryAuth(r); err == nil {
		t.Error("a header that is not base64 was taken")
	}
}

// The engine's error categories map to docker's statuses at the edge.
func TestStatusOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{fmt.Errorf("x: %w", store.ErrNameInUse), 409},
		{fmt.Errorf("x: %w", store.ErrNotFound), 404},
		{fmt.Errorf("x: %w", engine.ErrInvalidState), 409},
		{fmt.Errorf("x: %w", engine.ErrAlreadyRunning), 304},
		{fmt.Errorf("x: %w", engine.ErrInvalid), 400},
		{errors.New("x"), 500},
	} {
		if got := statusOf(tc.err); got != tc.want {
			t.Errorf("statusOf(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

// TestNotSupported: what berth does not do is said by name with 501,
// in docker's error body; plugins are an empty list, as on a dockerd
// without any.
func TestNotSupported(t *testing.T) {
	s := New(nil, "test", nil, Views{})
	for _, tc := range []struct {
		method, path string
		code         int
		body         string
	}{
		{"POST", "/v1.47/build?t=x", 501, "does not build images"},
		{"POST", "/session", 501, "does not build images"},
		{"GET", "/images/search?term=busybox", 501, "does not search registries"},
		{"GET", "/plugins", 200, "[]"},
		{"POST", "/plugins/pull?remote=x", 501, "no engine plugins"},
		{"GET", "/v1.41/plugins/nope/json", 404, `plugin \"nope\" not found`},
	} {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, httptest.NewRequest(tc.method, tc.path, nil))
		if w.Code != tc.code || !strings.Contains(w.Body.String(), tc.body) {
			t.Errorf("%s %s: %d %q, want %d with %q", tc.method, tc.path, w.Code, w.Body.String(), tc.code, tc.body)
		}
	}
}

// The CLI resizes an exec's terminal as soon as its start answers, while
// the process may still be starting: the size is kept for its pty, not
// refused (the CLI gives up after a few refusals, leaving it 0x0). An
// exec that never started or has ended is refused.
func TestResizeExecBeforeItsPty(t *testing.T) {
	s := &Server{execs: map[string]*execRecord{}}
	starting := &execRecord{id: "starting", started: true, cfg: container.ExecCreateRequest{Tty: true, Cmd: []string{"sh"}}}
	created := &execRecord{id: "created", cfg: container.ExecCreateRequest{Tty: true, Cmd: []string{"sh"}}}
	code := 0
	ended := &execRecord{id: "ended", started: true, exitCode: &code, cfg: container.ExecCreateRequest{Tty: true, Cmd: []string{"sh"}}}
	for _, rec := range []*execRecord{starting, created, ended} {
		s.execs[rec.id] = rec
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /exec/{id}/resize", func(w http.ResponseWriter, r *http.Request) {
		if err := s.resizeExec(w, r); err != nil {
			writeError(w, err)
		}
	})
	resize := func(id string) int {
		rr := httptest.NewRecorder()
		mux.ServeHTTP(rr, httptest.NewRequest("POST", "/exec/"+id+"/resize?h=26&w=91", nil))
		return rr.Code
	}
	if got := resize("starting"); got != http.StatusOK || starting.size == nil || starting.size.Row != 26 || starting.size.Col != 91 {
		t.Errorf("resize of a starting exec: %d, kept %+v", got, starting.size)
	}
	for _, id := range []string{"created", "ended"} {
		if got := resize(id); got != http.StatusConflict {
			t.Errorf("resize of the %s exec: %d, want 409", id, got)
		}
	}
	if got := resize("nope"); got != http.StatusNotFound {
		t.Errorf("resize of no exec: %d", got)
	}
}
