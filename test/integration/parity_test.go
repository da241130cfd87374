package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The docker parity test (issue 16): the same command lines go through
// the docker CLI, against Debian's dockerd on a private root, exec-root,
// pidfile, socket, cgroup parent and network namespace, and through
// berth, on the same image (scripts/mkimage.sh, loaded on both sides),
// after the same set-up. It compares exit codes, the shape of JSON output
// (keys and their JSON types), table headers, and, where the output does
// not depend on IDs or clocks, the text itself.
//
// A case whose outcome differs says so in the table: why (the difference
// is intended, with the reason) or todo (a difference berth has yet to
// close). A difference not in the table fails the test, and so does a
// marked case that no longer differs (the mark must go).
//
// `make parity` runs every case and prints the counts; `make test` runs
// the quick part (every case marked quick). BERTH_PARITY_DOCKER names the
// docker CLI (default: docker on PATH).

type parityKind int

const (
	pExit   parityKind = iota // exit codes only
	pHeader                   // exit codes and the first line's columns
	pText                     // exit codes and stdout, byte for byte
	pLines                    // exit codes and the number of stdout lines
	pShape                    // exit codes and JSON keys and types (lines of objects, or one document)
)

type parityCase struct {
	args  []string
	kind  parityKind
	depth int    // shape: how deep keys are compared (default 1)
	quick bool   // part of the quick run in `make test`
	why   string // an intended difference, and why
	old   string // a difference with docker CLIs before 28 only, and why (berth follows the current CLI)
	todo  string // a difference berth has not closed yet
}

func pcase(kind parityKind, args ...string) parityCase { return parityCase{args: args, kind: kind} }

func (p parityCase) q() parityCase                { p.quick = true; return p }
func (p parityCase) d(n int) parityCase           { p.depth = n; return p }
func (p parityCase) intended(s string) parityCase { p.why = s; return p }
func (p parityCase) notYet(s string) parityCase   { p.todo = s; return p }
func (p parityCase) oldCLI(s string) parityCase   { p.old = s; return p }

const (
	pImage = "berth-demo/busybox:latest"
	// The columns a table shows: docker's headers for every field.
	psAllCols      = `table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.CreatedAt}}\t{{.RunningFor}}\t{{.Ports}}\t{{.State}}\t{{.Status}}\t{{.Size}}\t{{.Names}}\t{{.Labels}}\t{{.Mounts}}\t{{.LocalVolumes}}\t{{.Networks}}`
	imagesAllCols  = `table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.Digest}}\t{{.CreatedSince}}\t{{.CreatedAt}}\t{{.Size}}\t{{.Containers}}\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.VirtualSize}}`
	networkAllCols = `table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}\t{{.IPv6}}\t{{.Internal}}\t{{.Labels}}\t{{.CreatedAt}}`
	volumeAllCols  = `table {{.Name}}\t{{.Driver}}\t{{.Scope}}\t{{.Mountpoint}}\t{{.Labels}}\t{{.Links}}\t{{.Size}}`
)

// paritySetup is run through both CLIs, in order, before the cases.
var paritySetup = [][]string{
	{"volume", "create", "--label", "purpose=parity", "pvol"},
	{"network", "create", "--label", "purpose=parity", "pnet"},
	{"create", "--name", "pcreated", "-l", "tier=db", pImage, "true"},
	{"run", "--name", "pexit", "-l", "tier=batch", pImage, "sh", "-c", "echo bye; echo oops >&2; exit 3"},
	{"run", "-d", "--name", "prun", "-l", "tier=web", "-l", "com.example.my-key=v", "-v", "pvol:/data", "-p", "80", "--expose", "90", pImage, "sleep", "1000"},
	{"run", "-d", "--name", "pnet1", "--network", "pnet", pImage, "sleep", "1000"},
}

var parityCases = []parityCase{
	// ps: tables, JSON, templates and functions, filters.
	pcase(pHeader, "ps").q(),
	pcase(pHeader, "ps", "-a"),
	pcase(pLines, "ps", "-q").q(),
	pcase(pLines, "ps", "-aq"),
	pcase(pHeader, "ps", "--no-trunc"),
	pcase(pHeader, "ps", "-s").q(),
	pcase(pShape, "ps", "--format", "json").q(),
	pcase(pShape, "ps", "-a", "--format", "json"),
	pcase(pShape, "ps", "-s", "--format", "json"),
	pcase(pShape, "ps", "-a", "--format", "{{json .}}").oldCLI("docker's CLI before 28 shows fewer keys; berth's are the current CLI's"),
	pcase(pHeader, "ps", "--format", psAllCols).q(),
	pcase(pHeader, "ps", "--format", `table {{.Label "com.example.my-key"}}\t{{.Label "tier"}}`),
	pcase(pText, "ps", "-a", "--format", "{{.Names}}").q(),
	pcase(pText, "ps", "-a", "--format", "{{.Names}} {{.State}} {{.Image}} {{.Command}}"),
	pcase(pText, "ps", "-a", "--format", `{{.Names}}\t{{.Label "tier"}}`),
	pcase(pText, "ps", "-a", "--format", "{{.Labels}}"),
	pcase(pText, "ps", "-a", "--format", "{{.Mounts}} {{.LocalVolumes}}"),
	pcase(pText, "ps", "-a", "--format", "{{.Networks}}").intended("berth's default network is named berth, docker's bridge"),
	pcase(pText, "ps", "--format", "{{json .Names}}"),
	pcase(pText, "ps", "-a", "--format", "{{upper .Names}}|{{lower .State}}|{{title .State}}").q(),
	pcase(pText, "ps", "-a", "--format", "{{pad .Names 1 2}}|{{truncate .Names 3}}"),
	pcase(pText, "ps", "-a", "--format", `{{join (split .Names "e") "+"}}`),
	pcase(pText, "ps", "-a", "--format", `{{.Names}}{{"\t"}}{{.State}}`),
	pcase(pText, "ps", "-a", "--filter", "status=exited", "--format", "{{.Names}}").q(),
	pcase(pText, "ps", "-a", "--filter", "status=created", "--format", "{{.Names}}"),
	pcase(pText, "ps", "-a", "--filter", "status=running", "--filter", "status=exited", "--format", "{{.Names}}"),
	pcase(pText, "ps", "-a", "--filter", "exited=3", "--format", "{{.Names}}"),
	pcase(pText, "ps", "-a", "--filter", "exited=0", "--format", "{{.Names}}"),
	pcase(pText, "ps", "-a", "--filter", "label=tier=web", "--format", "{{.Names}}"),
	pcase(pText, "ps", "-a", "--filter", "label=tier", "--format", "{{.Names}}"),
	pcase(pText, "ps", "-a", "--filter", "name=prun", "--format", "{{.Names}}"),
	pcase(pText, "ps", "-a", "--filter", "ancestor="+pImage, "--format", "{{.Names}}"),
	pcase(pText, "ps", "-a", "--filter", "ancestor=berth-demo/busybox", "--format", "{{.Names}}"),
	pcase(pText, "ps", "-a", "--filter", "volume=pvol", "--format", "{{.Names}}").q(),
	pcase(pText, "ps", "-a", "--filter", "volume=/data", "--format", "{{.Names}}"),
	pcase(pText, "ps", "-a", "--filter", "network=pnet", "--format", "{{.Names}}").q(),
	pcase(pText, "ps", "-a", "--filter", "publish=80", "--format", "{{.Names}}").q(),
	pcase(pText, "ps", "-a", "--filter", "publish=80/udp", "--format", "{{.Names}}"),
	pcase(pText, "ps", "-a", "--filter", "expose=80", "--format", "{{.Names}}"),
	pcase(pText, "ps", "-a", "--filter", "expose=70-90/tcp", "--format", "{{.Names}}"),
	pcase(pText, "ps", "-a", "--filter", "expose=90", "--format", "{{.Names}}"),
	pcase(pText, "ps", "-a", "--filter", "publish=90", "--format", "{{.Names}}"),
	pcase(pText, "ps", "--filter", "name=pnet1", "--format", "{{.Ports}}|{{.Networks}}|{{.Mounts}}"),
	pcase(pText, "ps", "-a", "--filter", "health=none", "--format", "{{.Names}}"),
	pcase(pText, "ps", "-a", "--filter", "health=healthy", "--format", "{{.Names}}"),
	pcase(pText, "ps", "-a", "--filter", "before=prun", "--format", "{{.Names}}").q(),
	pcase(pText, "ps", "-a", "--filter", "since=pexit", "--format", "{{.Names}}").q(),
	pcase(pText, "ps", "-n", "2", "--format", "{{.Names}}"),
	pcase(pText, "ps", "-l", "--format", "{{.Names}}"),
	pcase(pExit, "ps", "-a", "--filter", "status=sleeping").q(),
	pcase(pExit, "ps", "--filter", "colour=blue"),
	pcase(pExit, "ps", "--filter", "health=sick"),
	pcase(pExit, "ps", "--filter", "before=nosuch"),
	pcase(pExit, "ps", "--format", "{{.Nope}}"),
	pcase(pExit, "ps", "--format", "{{.Names"),
	pcase(pExit, "ps", "extra").q(),
	pcase(pExit, "ps", "--bogus-flag").q(),
	pcase(pHeader, "container", "ls"),
	pcase(pHeader, "container", "ps", "-a"),
	pcase(pHeader, "container", "list"),

	// images
	pcase(pHeader, "images").q(),
	pcase(pLines, "images", "-q"),
	pcase(pText, "images", "-q", "--no-trunc").q(),
	pcase(pShape, "images", "--format", "json").q(),
	pcase(pHeader, "images", "--digests"),
	pcase(pHeader, "images", "--format", imagesAllCols).q(),
	pcase(pText, "images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}").q(),
	pcase(pText, "images", "--format", "{{.Digest}}").intended("berth records the manifest digest of a loaded image (its RepoDigests name it too); docker has none for a load"),
	pcase(pText, "images", "berth-demo/busybox", "--format", "{{.Tag}}"),
	pcase(pText, "images", "--filter", "reference=berth-demo/*", "-q"),
	pcase(pText, "images", "--filter", "dangling=true", "-q"),
	pcase(pText, "images", "--filter", "label=org.opencontainers.image.title", "-q"),
	pcase(pExit, "images", "--filter", "colour=blue"),
	pcase(pText, "images", "--format", "{{upper .Repository}} {{title .Tag}}"),
	pcase(pHeader, "image", "ls"),
	pcase(pLines, "image", "list", "-q"),
	pcase(pHeader, "images", "nosuch/repo"),
	pcase(pExit, "images", "a", "b"),

	// image inspect and history
	pcase(pShape, "image", "inspect", pImage).d(1).q().intended("berth's inspect is the current API's (the moby api module): fields dropped since 20.10's API 1.41 (Container, ContainerConfig, VirtualSize, ...) are gone, Descriptor is new"),
	pcase(pText, "image", "inspect", "--format", "{{.Id}}", pImage).q(),
	pcase(pText, "image", "inspect", "--format", "{{json .Config.Labels}}", pImage),
	pcase(pText, "image", "inspect", "--format", "{{upper .Os}} {{.Architecture}}", pImage),
	pcase(pText, "image", "inspect", "--format", `{{join .RepoTags ","}}`, pImage),
	pcase(pText, "image", "inspect", "-f", "{{json .Config.Cmd}}", pImage),
	pcase(pExit, "image", "inspect", "nosuch:1").q(),
	pcase(pExit, "image", "inspect", pImage, "nosuch:1"),
	pcase(pText, "inspect", "--type", "image", "--format", "{{.Os}}", pImage),
	pcase(pHeader, "image", "history", pImage),
	pcase(pShape, "image", "history", "--format", "json", pImage),
	pcase(pLines, "history", "-q", pImage),
	pcase(pExit, "history", "nosuch:1"),

	// container inspect
	pcase(pShape, "inspect", "prun").d(1).q(),
	pcase(pShape, "container", "inspect", "pexit").d(1),
	pcase(pShape, "inspect", "-s", "prun").d(1),
	pcase(pText, "ps", "-a", "--filter", "name=pcreated", "--format", "{{.Size}}"),
	pcase(pText, "ps", "-a", "-s", "--filter", "name=pcreated", "--format", "{{.Names}} {{.Size}}"),
	pcase(pText, "inspect", "--format", "{{.Name}}", "prun").q(),
	pcase(pText, "inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", "pexit").q(),
	pcase(pText, "inspect", "--format", "{{json .Config.Labels}}", "prun"),
	pcase(pText, "inspect", "--format", "{{upper .State.Status}}", "prun"),
	pcase(pText, "inspect", "--format", "{{len .Mounts}} {{range .Mounts}}{{.Type}} {{.Name}} {{.Destination}}{{end}}", "prun"),
	pcase(pText, "inspect", "--format", "{{.Config.Image}} {{json .Config.Cmd}}", "prun"),
	pcase(pExit, "inspect", "nosuch").q(),
	pcase(pExit, "inspect", "prun", "nosuch"),
	pcase(pExit, "container", "inspect", "pvol"),
	pcase(pText, "inspect", "--type", "volume", "--format", "{{.Name}}", "pvol"),
	pcase(pText, "inspect", "--type", "network", "--format", "{{.Name}}", "pnet"),

	// networks
	pcase(pHeader, "network", "ls").q(),
	pcase(pLines, "network", "ls", "-q").intended("docker lists host and none as networks; berth has only its default one and those created"),
	pcase(pShape, "network", "ls", "--format", "json").q(),
	pcase(pHeader, "network", "ls", "--format", networkAllCols),
	pcase(pText, "network", "ls", "--filter", "name=pnet", "--format", "{{.Name}} {{.Driver}} {{.Internal}} {{.IPv6}} {{.Scope}} {{.Labels}}").q(),
	pcase(pText, "network", "ls", "--filter", "label=purpose=parity", "--format", "{{.Name}}"),
	pcase(pText, "network", "ls", "--filter", "name=pnet", "--format", `{{.Label "purpose"}} {{upper .Name}}`),
	pcase(pText, "network", "ls", "--filter", "type=custom", "--format", "{{.Name}}"),
	pcase(pText, "network", "ls", "--filter", "driver=bridge", "--format", "{{.Name}}").intended("berth's default network is named berth, docker's bridge"),
	pcase(pExit, "network", "ls", "--filter", "colour=blue"),
	pcase(pShape, "network", "inspect", "pnet").d(1).intended("EnableIPv4 is the current API's, not 20.10's"),
	pcase(pText, "network", "inspect", "--format", "{{.Name}} {{.Driver}} {{.Scope}} {{json .Labels}}", "pnet"),
	pcase(pExit, "network", "inspect", "nosuch").q(),
	pcase(pExit, "network", "create", "pnet"),
	pcase(pExit, "network", "rm", "nosuch"),
	pcase(pExit, "network", "create"),

	// volumes
	pcase(pHeader, "volume", "ls").q(),
	pcase(pText, "volume", "ls", "-q").q(),
	pcase(pShape, "volume", "ls", "--format", "json").q(),
	pcase(pHeader, "volume", "ls", "--format", volumeAllCols),
	pcase(pText, "volume", "ls", "--format", `{{.Name}} {{.Driver}} {{.Labels}} {{.Label "purpose"}} {{.Scope}}`),
	pcase(pText, "volume", "ls", "--filter", "name=pvol", "-q"),
	pcase(pText, "volume", "ls", "--filter", "label=purpose", "-q"),
	pcase(pText, "volume", "ls", "--filter", "dangling=false", "-q"),
	pcase(pExit, "volume", "ls", "--filter", "colour=blue"),
	pcase(pShape, "volume", "inspect", "pvol").d(1).q().oldCLI("docker's CLI before 28 shows the Options of a volume without any as {}; the current one as null, as berth"),
	pcase(pText, "volume", "inspect", "--format", "{{.Name}} {{.Driver}} {{.Scope}} {{json .Labels}}", "pvol"),
	pcase(pExit, "volume", "inspect", "nosuch").q(),
	pcase(pExit, "volume", "rm", "nosuch").q(),
	pcase(pExit, "volume", "rm", "pvol"),
	pcase(pExit, "volume", "create", "bad/name"),

	// info, system df, events
	pcase(pText, "info", "--format", "{{.Containers}} {{.ContainersRunning}} {{.ContainersStopped}} {{.ContainersPaused}} {{.Images}}").q(),
	pcase(pText, "info", "--format", "{{upper .OSType}}"),
	pcase(pText, "info", "--format", "{{json .OSType}}"),
	pcase(pHeader, "system", "df").q(),
	pcase(pShape, "system", "df", "--format", "json"),
	pcase(pHeader, "system", "df", "-v"),
	pcase(pHeader, "system", "df", "--format", `table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}`),
	pcase(pText, "system", "df", "--format", "{{.Type}}"),
	pcase(pText, "events", "--since", "0", "--until", "0s", "--filter", "type=volume", "--filter", "event=create", "--format", "{{.Type}} {{.Action}} {{.Actor.ID}}").q().intended("dockerd repeats a volume's create event when a container mounts it; berth writes it once"),
	pcase(pText, "events", "--since", "0", "--until", "0s", "--filter", "type=network", "--filter", "event=create", "--format", "{{.Type}} {{.Action}} {{json .Actor.Attributes.name}}"),
	pcase(pText, "events", "--since", "0", "--until", "0s", "--filter", "container=pexit", "--filter", "event=die", "--format", "{{.Status}} {{.Actor.Attributes.exitCode}}"),

	// --format everywhere: json, table, functions
	pcase(pShape, "info", "--format", "json").intended("KernelMemory and KernelMemoryTCP are 20.10's API, gone from the current one"),
	pcase(pShape, "info", "--format", "{{json .}}").intended("KernelMemory and KernelMemoryTCP are 20.10's API, gone from the current one"),
	pcase(pShape, "events", "--since", "0", "--until", "0s", "--filter", "type=container", "--filter", "event=create", "--format", "json").d(2),
	pcase(pShape, "events", "--since", "0", "--until", "0s", "--filter", "type=volume", "--format", "{{json .}}").d(2),
	pcase(pText, "events", "--since", "0", "--until", "0s", "--filter", "container=pcreated", "--format", "{{.Action}} {{json .Actor.Attributes.tier}} {{.Actor.Attributes.image}}"),
	pcase(pShape, "images", "--format", "{{json .}}"),
	pcase(pShape, "network", "ls", "--format", "{{json .}}").oldCLI("docker's CLI before 28 shows fewer keys; berth's are the current CLI's"),
	pcase(pShape, "volume", "ls", "--format", "{{json .}}").oldCLI("docker's CLI before 28 shows fewer keys; berth's are the current CLI's"),
	pcase(pShape, "system", "df", "--format", "{{json .}}"),
	pcase(pHeader, "ps", "--format", "table"),
	pcase(pHeader, "images", "--format", "table"),
	pcase(pHeader, "network", "ls", "--format", "table"),
	pcase(pHeader, "volume", "ls", "--format", "table"),
	pcase(pHeader, "system", "df", "--format", "table"),
	pcase(pHeader, "volume", "ls", "--format", `table {{.Name}}\t{{.Label "purpose"}}`),
	pcase(pHeader, "network", "ls", "--format", `table {{.Name}}\t{{.Label "purpose"}}`),
	pcase(pText, "image", "history", "--format", "{{upper .CreatedBy}}|{{.Size}}", pImage),
	pcase(pText, "stats", "--no-stream", "--format", "{{upper .Name}} {{json .Name}}", "prun"),
	pcase(pShape, "image", "inspect", "--format", "{{json .}}", pImage).intended("berth's inspect is the current API's (the moby api module): fields dropped since 20.10's API 1.41 (Container, ContainerConfig, VirtualSize, ...) are gone, Descriptor is new"),
	pcase(pShape, "volume", "inspect", "--format", "{{json .}}", "pvol").oldCLI("docker's CLI before 28 shows the Options of a volume without any as {}; the current one as null, as berth"),
	pcase(pShape, "network", "inspect", "--format", "{{json .}}", "pnet").oldCLI("docker's CLI before 28 shows fewer keys; berth's are the current CLI's"),
	pcase(pShape, "inspect", "--format", "json", "prun"),
	pcase(pText, "volume", "inspect", "--format", "{{upper .Name}} {{json .Labels}} {{len .Labels}}", "pvol"),
	pcase(pText, "network", "inspect", "--format", `{{lower .Name}} {{join (split .Name "n") "-"}}`, "pnet"),
	pcase(pText, "info", "--format", "{{pad .OSType 1 1}}|{{truncate .OSType 3}}"),

	pcase(pHeader, "image", "history", "--format", `table {{.ID}}\t{{.CreatedBy}}\t{{.Size}}\t{{.CreatedSince}}\t{{.CreatedAt}}\t{{.Comment}}`, pImage),
	pcase(pText, "image", "history", "--format", `{{.CreatedBy}}\t{{.Size}}`, pImage),
	pcase(pHeader, "stats", "--no-stream", "--format", `table {{.Name}}\t{{.Container}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}\t{{.ID}}`, "prun"),
	pcase(pHeader, "version").q(),
	pcase(pShape, "version", "--format", "json").d(2),
	pcase(pText, "version", "--format", "{{.Client.Os}}/{{.Client.Arch}} {{.Server.Os}} {{.Client.Context}}"),
	pcase(pExit, "version", "extra"),

	// exit codes and errors of every verb
	pcase(pExit, "start", "nosuch").q(),
	pcase(pExit, "stop", "nosuch").q(),
	pcase(pExit, "kill", "nosuch"),
	pcase(pExit, "rm", "nosuch").q(),
	pcase(pExit, "rm", "prun").q(),
	pcase(pExit, "restart", "nosuch"),
	pcase(pExit, "pause", "nosuch"),
	pcase(pExit, "unpause", "nosuch"),
	pcase(pExit, "unpause", "prun"),
	pcase(pExit, "logs", "nosuch").q(),
	pcase(pText, "logs", "pexit"),
	pcase(pExit, "port", "nosuch"),
	pcase(pExit, "top", "nosuch"),
	pcase(pExit, "top", "pexit"),
	pcase(pExit, "wait", "nosuch"),
	pcase(pText, "wait", "pexit"),
	pcase(pExit, "rename", "nosuch", "other"),
	pcase(pExit, "exec", "nosuch", "true").q(),
	pcase(pExit, "exec", "pexit", "true"),
	pcase(pExit, "exec", "prun", "nosuchcmd").q().intended("dockerd 20.10 exits an exec of a missing command with 126; docker run, and later dockerd, with 127, as berth does"),
	pcase(pExit, "exec", "prun", "/etc/passwd"),
	pcase(pText, "exec", "prun", "sh", "-c", "echo in; exit 7").q(),
	pcase(pText, "run", "--rm", pImage, "sh", "-c", "echo out; exit 3").q(),
	pcase(pExit, "run", "--rm", pImage, "nosuchcmd").q(),
	pcase(pExit, "run", "--rm", pImage, "/etc/passwd").q(),
	pcase(pExit, "run", "--rm", "--bogus-flag", pImage).q(),
	pcase(pExit, "run", "--rm", "--name", "prun", pImage, "true"),
	pcase(pExit, "run", "--rm", "--network", "nosuch", pImage, "true"),
	pcase(pExit, "run"),
	pcase(pExit, "create", "--name", "prun", pImage, "true").q(),
	pcase(pExit, "create", "--bogus-flag", pImage),
	pcase(pExit, "create"),
	pcase(pExit, "cp", "nosuch:/etc/hosts", "-"),
	pcase(pExit, "cp", "prun:/nosuch", "-"),
	pcase(pExit, "diff", "nosuch"),
	pcase(pExit, "export", "nosuch"),
	pcase(pExit, "commit", "nosuch"),
	pcase(pExit, "stats", "--no-stream", "nosuch"),
	pcase(pExit, "update", "--memory", "64m", "nosuch"),
	pcase(pExit, "rmi", "nosuch:1").q(),
	pcase(pExit, "rmi", pImage).q(),
	pcase(pExit, "tag", "nosuch:1", "other:1"),
	pcase(pExit, "tag", pImage, "Bad:Name"),
	pcase(pExit, "save", "nosuch:1"),
	pcase(pExit, "network", "connect", "pnet", "nosuch"),
	pcase(pExit, "network", "disconnect", "pnet", "prun"),
	pcase(pExit, "attach", "nosuch"),
	pcase(pExit, "bogus-command").q(),
	pcase(pExit, "volume", "bogus-command"),
	pcase(pExit, "stop"),
	pcase(pExit, "--bogus-flag", "ps"),
	pcase(pHeader, "top", "prun"),
	pcase(pShape, "stats", "--no-stream", "--format", "json", "prun"),
	pcase(pHeader, "stats", "--no-stream", "prun"),
	pcase(pText, "stats", "--no-stream", "--format", "{{.Name}}", "prun"),
	pcase(pText, "port", "prun", "90"),
	pcase(pLines, "port", "prun"),
	pcase(pText, "diff", "pexit"),

	// run, exec and the lifecycle verbs' output, on objects of their own
	pcase(pText, "run", "--rm", "-e", "X=1", pImage, "sh", "-c", "echo $X").q(),
	pcase(pText, "run", "--rm", "-w", "/tmp", pImage, "pwd"),
	pcase(pText, "run", "--rm", pImage, "id").notYet("docker's process has its primary group among its supplementary groups; berth's spec gives it none (internal/engine/spec)"),
	pcase(pText, "run", "--rm", "-u", "www", pImage, "id").notYet("docker's process has its primary group among its supplementary groups; berth's spec gives it none (internal/engine/spec)"),
	pcase(pText, "run", "--rm", "-u", "33:33", pImage, "id").notYet("docker's process has its primary group among its supplementary groups; berth's spec gives it none (internal/engine/spec)"),
	pcase(pText, "run", "--rm", "--entrypoint", "echo", pImage, "hi"),
	pcase(pText, "run", "--rm", "--hostname", "h1", pImage, "hostname"),
	pcase(pText, "run", "--rm", "--read-only", pImage, "touch", "/x"),
	pcase(pText, "run", "--rm", "-l", "a=b", pImage, "true"),
	pcase(pText, "exec", "-u", "33", "prun", "id", "-u"),
	pcase(pText, "exec", "-w", "/tmp", "prun", "pwd"),
	pcase(pText, "exec", "-e", "A=1", "prun", "sh", "-c", "echo $A"),
	pcase(pText, "cp", "/etc/hostname", "prun:/tmp/copied"),
	pcase(pText, "exec", "prun", "cat", "/tmp/copied"),
	pcase(pLines, "create", "--name", "pmut", pImage, "sleep", "1000").q(),
	pcase(pText, "start", "pmut").q(),
	pcase(pText, "pause", "pmut"),
	pcase(pText, "ps", "--filter", "status=paused", "--format", "{{.Names}} {{.State}}"),
	pcase(pText, "unpause", "pmut"),
	pcase(pText, "restart", "-t", "0", "pmut"),
	pcase(pText, "kill", "pmut"),
	pcase(pText, "wait", "pmut"),
	pcase(pText, "inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", "pmut"),
	pcase(pText, "start", "pmut"),
	pcase(pText, "stop", "-t", "0", "pmut").q(),
	pcase(pText, "rename", "pmut", "pmut2"),
	pcase(pText, "ps", "-a", "--filter", "name=pmut", "--format", "{{.Names}}"),
	pcase(pText, "rm", "pmut2").q(),
	pcase(pText, "rm", "pmut2"),
	pcase(pLines, "run", "-d", "--name", "pdone", pImage, "true"),
	pcase(pText, "wait", "pdone"),
	pcase(pText, "rm", "-f", "pdone", "nosuch"),
	pcase(pLines, "create", "--name", "pbad", pImage, "nosuchcmd"),
	pcase(pExit, "start", "pbad"),
	pcase(pExit, "start", "-a", "pbad"),
	pcase(pText, "inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", "pbad"),
	pcase(pText, "rm", "pbad"),
	pcase(pExit, "run", "--name", "pbad2", pImage, "sh", "-c", "exit 4"),
	pcase(pExit, "start", "-a", "pbad2"),
	pcase(pText, "rm", "pbad2"),
	pcase(pText, "volume", "create", "pv2").q(),
	pcase(pText, "volume", "rm", "pv2").q(),
	pcase(pLines, "network", "create", "pn2"),
	pcase(pText, "network", "rm", "pn2"),
	pcase(pText, "tag", pImage, "berth-demo/other:1"),
	pcase(pText, "images", "--format", "{{.Repository}}:{{.Tag}}", "berth-demo/other"),
	pcase(pText, "rmi", "berth-demo/other:1").q(),
}

type parityResult struct {
	code   int
	stdout string
	stderr string
}

// parityCLI runs one side's command lines.
type parityCLI func(args ...string) parityResult

func runParity(cmd *exec.Cmd) parityResult {
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		code = -1
		errb.WriteString(err.Error())
	}
	return parityResult{code, out.String(), errb.String()}
}

// privateDockerd starts Debian's dockerd on its own root, exec-root,
// pidfile, socket, configuration and cgroup parent, in a network
// namespace of its own (so its bridge, ports and firewall never touch the
// host's) and a mount namespace of its own, and gives a function that
// runs the docker CLI against it, and the CLI's major version.
func privateDockerd(t *testing.T) (parityCLI, int) {
	dockerd, err := exec.LookPath("dockerd")
	if err != nil {
		t.Skip("dockerd not installed (Debian's docker.io; make deps installs it)")
	}
	docker := os.Getenv("BERTH_PARITY_DOCKER")
	if docker == "" {
		if docker, err = exec.LookPath("docker"); err != nil {
			t.Skip("no docker CLI")
		}
	}
	// A short path: the socket's must fit a sockaddr_un.
	dir, err := os.MkdirTemp("", "bparity")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "docker.sock")
	logf, err := os.Create(filepath.Join(dir, "dockerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	// Its own configuration file (no host daemon.json), and a mount
	// namespace of its own with a fresh /run (its plugin directory) and
	// /etc/docker (where 20.10 writes a key.json; Debian's docker-registry
	// makes the directory), so nothing it mounts or writes outside dir
	// reaches the host.
	conf := filepath.Join(dir, "daemon.json")
	if err := os.WriteFile(conf, []byte("{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--config-file", conf, "--data-root", filepath.Join(dir, "root"), "--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "docker.pid"), "--host", "unix://" + sock,
		"--cgroup-parent", "/" + filepath.Base(dir), "--iptables=false", "--ip6tables=false", "--ip-masq=false",
		"--storage-driver", "overlay2", "--log-level", "warn"}
	script := `mount -t tmpfs tmpfs /run && { [ ! -d /etc/docker ] || mount -t tmpfs tmpfs /etc/docker; } && exec "$@"`
	cmd := exec.Command("unshare", append([]string{"--net", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh", dockerd}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("dockerd: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	cli := func(args ...string) parityResult {
		c := exec.Command(docker, args...)
		c.Env = append(os.Environ(), "DOCKER_HOST=unix://"+sock, "DOCKER_CONFIG="+filepath.Join(dir, "cli"), "DOCKER_CLI_HINTS=false")
		return runParity(c)
	}
	t.Cleanup(func() {
		if ids := strings.Fields(cli("ps", "-aq").stdout); len(ids) > 0 {
			cli(append([]string{"rm", "-f"}, ids...)...)
		}
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		// Anything dockerd left mounted under its directory.
		if out, err := exec.Command("findmnt", "-rno", "TARGET").Output(); err == nil {
			mounts := strings.Fields(string(out))
			slices.Reverse(mounts)
			for _, m := range mounts {
				if strings.HasPrefix(m, dir+"/") {
					syscall.Unmount(m, syscall.MNT_DETACH)
				}
			}
		}
		os.RemoveAll(dir)
		// dockerd leaves its cgroup parent, empty, in every hierarchy.
		cgroups, _ := filepath.Glob("/sys/fs/cgroup/*/" + filepath.Base(dir))
		for _, cg := range append(cgroups, "/sys/fs/cgroup/"+filepath.Base(dir)) {
			removeCgroupTree(cg)
		}
	})
	for deadline := time.Now().Add(30 * time.Second); ; {
		if r := cli("version", "--format", "{{.Server.Version}}"); r.code == 0 {
			t.Logf("docker CLI %s, dockerd %s", strings.TrimSpace(cli("version", "--format", "{{.Client.Version}}").stdout), strings.TrimSpace(r.stdout))
			break
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("dockerd exited: %s", log)
		default:
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("dockerd did not answer in 30 s: %s", log)
		}
		time.Sleep(200 * time.Millisecond)
	}
	major, _, _ := strings.Cut(strings.TrimSpace(cli("version", "--format", "{{.Client.Version}}").stdout), ".")
	n, err := strconv.Atoi(major)
	if err != nil {
		t.Fatalf("docker CLI version %q", major)
	}
	return cli, n
}

// removeCgroupTree removes an empty cgroup and its empty children.
func removeCgroupTree(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.IsDir() {
			removeCgroupTree(filepath.Join(dir, e.Name()))
		}
	}
	syscall.Rmdir(dir)
}

func TestDockerParity(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root (dockerd and berth's containers)")
	}
	full := os.Getenv("BERTH_PARITY") == "full"
	docker, cliMajor := privateDockerd(t)
	e := newEngine(t)
	e.loadDemoImage()
	berth := func(args ...string) parityResult { return runParity(e.command(args...)) }
	if r := docker("load", "-i", demoTarPath); r.code != 0 {
		t.Fatalf("docker load: %s", r.stderr)
	}
	for _, args := range paritySetup {
		for side, cli := range map[string]parityCLI{"docker": docker, "berth": berth} {
			if r := cli(args...); r.code != 0 && !slices.Contains(args, "pexit") {
				t.Fatalf("%s %s: exit %d: %s", side, strings.Join(args, " "), r.code, r.stderr)
			}
		}
	}

	var same, intended, todo, different, skipped int
	for _, pc := range parityCases {
		if !full && !pc.quick {
			continue
		}
		if cliMajor < 23 && slices.Contains(pc.args, "json") {
			skipped++ // --format json came with docker 23's CLI
			continue
		}
		if cliMajor < 28 && pc.old != "" {
			pc.why = pc.old
		}
		d, b := docker(pc.args...), berth(pc.args...)
		diff := compareParity(pc, d, b)
		line := strings.Join(pc.args, " ")
		switch {
		case diff == "" && (pc.why != "" && pc.why != pc.old || pc.todo != ""):
			t.Errorf("%s: now the same as docker's: take its mark off (%s%s)", line, pc.why, pc.todo)
			same++
		case diff == "":
			same++
		case pc.why != "":
			intended++
			t.Logf("intended: %s: %s (%s)", line, diff, pc.why)
		case pc.todo != "":
			todo++
			t.Logf("todo: %s: %s (%s)", line, diff, pc.todo)
		default:
			different++
			t.Errorf("different: %s: %s\n  docker stderr: %s  berth stderr: %s", line, diff, d.stderr, b.stderr)
		}
	}
	msg := fmt.Sprintf("docker parity: %d command lines: %d same, %d intended, %d different (%d of them known, to do)",
		same+intended+todo+different, same, intended, todo+different, todo)
	if skipped > 0 {
		msg += fmt.Sprintf("; %d skipped: docker CLI %d has no --format json (BERTH_PARITY_DOCKER names a newer one)", skipped, cliMajor)
	}
	t.Log(msg)
	fmt.Println(msg)
}

// compareParity says how berth's result differs from docker's ("" when it
// does not).
func compareParity(pc parityCase, d, b parityResult) string {
	if d.code != b.code {
		return fmt.Sprintf("exit %d, docker's %d", b.code, d.code)
	}
	switch pc.kind {
	case pHeader:
		dh, bh := headerColumns(d.stdout), headerColumns(b.stdout)
		if !slices.Equal(dh, bh) {
			return fmt.Sprintf("header %q, docker's %q", bh, dh)
		}
	case pText:
		if d.stdout != b.stdout {
			return fmt.Sprintf("output %q, docker's %q", b.stdout, d.stdout)
		}
	case pLines:
		if dn, bn := countLines(d.stdout), countLines(b.stdout); dn != bn {
			return fmt.Sprintf("%d lines, docker's %d", bn, dn)
		}
	case pShape:
		depth := max(pc.depth, 1)
		ds, err := jsonShape(d.stdout, depth)
		if err != nil {
			return "docker's output is not JSON: " + err.Error()
		}
		bs, err := jsonShape(b.stdout, depth)
		if err != nil {
			return "output is not JSON: " + err.Error()
		}
		var missing, extra, types []string
		for k, dt := range ds {
			bt, ok := bs[k]
			switch {
			case !ok:
				missing = append(missing, k)
			case bt != dt:
				types = append(types, fmt.Sprintf("%s is %s, docker's %s", k, bt, dt))
			}
		}
		for k := range bs {
			if _, ok := ds[k]; !ok {
				extra = append(extra, k)
			}
		}
		if len(missing)+len(extra)+len(types) > 0 {
			sort.Strings(missing)
			sort.Strings(extra)
			sort.Strings(types)
			return fmt.Sprintf("JSON: missing %v, extra %v, types %v", missing, extra, types)
		}
	}
	return ""
}

func countLines(s string) int { return len(strings.Fields(strings.ReplaceAll(s, " ", "_"))) }

var columnGap = regexp.MustCompile(`\s{2,}`)

func headerColumns(out string) []string {
	first, _, _ := strings.Cut(out, "\n")
	return columnGap.Split(strings.TrimSpace(first), -1)
}

// jsonShape maps each key path (to depth) of a JSON document, or of lines
// of JSON objects, to its JSON type; array elements share the path "[]"
// and an array of objects is looked into.
func jsonShape(out string, depth int) (map[string]string, error) {
	pShape := map[string]string{}
	dec := json.NewDecoder(strings.NewReader(out))
	n := 0
	for dec.More() {
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		walkShape(pShape, "", v, depth)
		n++
	}
	if n == 0 {
		return nil, errors.New("empty")
	}
	return pShape, nil
}

func walkShape(pShape map[string]string, path string, v any, depth int) {
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			if path == "" { // a document that is an array: its elements
				walkShape(pShape, path, e, depth)
			} else if depth > 0 {
				walkShape(pShape, path+"[]", e, depth)
			}
		}
		return
	case map[string]any:
		if depth == 0 {
			return
		}
		for k, e := range x {
			p := k
			if path != "" {
				p = path + "." + k
			}
			pShape[p] = jsonType(e)
			walkShape(pShape, p, e, depth-1)
		}
	}
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case float64:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	}
	return "object"
}
