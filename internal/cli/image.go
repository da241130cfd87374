package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/berth-dev/berth/internal/engine/store"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/image/credentials"
	"github.com/berth-dev/berth/internal/image/reference"
	"github.com/berth-dev/berth/internal/image/remote"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	mobyimage "github.com/moby/moby/api/types/image"
	"github.com/spf13/cobra"
)

// globalOptions are the engine's global flags.
type globalOptions struct {
	root           string
	state          string
	registryConfig string
	certsDir       string
	namespace      string
}

func (g *globalOptions) register(cmd *cobra.Command) {
	f := cmd.PersistentFlags()
	f.StringVar(&g.root, "root", envOr("BERTH_ROOT", "/var/lib/berth"), "state root: images, layers, containers ($BERTH_ROOT)")
	f.StringVar(&g.state, "state", envOr("BERTH_STATE", "/run/berth"), "run-time state directory ($BERTH_STATE)")
	f.StringVar(&g.registryConfig, "registry-config", envOr("BERTH_REGISTRY_CONFIG", "/etc/berth/registries.json"), "registries configuration: mirrors, insecure registries, CAs")
	f.StringVar(&g.certsDir, "certs-dir", envOr("BERTH_CERTS_DIR", "/etc/berth/certs.d"), "per-registry certificates: DIR/host:port/*.crt")
	f.StringVar(&g.namespace, "namespace", envOr("BERTH_NAMESPACE", ""), "store namespace of the containers named and listed (\"\": the default; the Kubernetes CRI's are apart) ($BERTH_NAMESPACE)")
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// keychainCredentials adapts the keychain to the registry client.
type keychainCredentials struct{ k *credentials.Keychain }

func (c keychainCredentials) Get(ctx context.Context, registry string) (string, string, error) {
	return c.k.Lookup(ctx, registry)
}

func (g *globalOptions) keychain() *credentials.Keychain {
	return credentials.New(credentials.Options{})
}

func (g *globalOptions) registryClient() (*remote.Client, error) {
	cfg, err := remote.LoadConfig(g.registryConfig)
	if err != nil {
		return nil, err
	}
	return remote.New(remote.Options{
		Registries:  cfg.Registries,
		CertsDir:    g.certsDir,
		Credentials: keychainCredentials{g.keychain()},
		UserAgent:   "berth/" + Version,
	}), nil
}

func (g *globalOptions) images() (*image.Service, error) {
	reg, err := g.registryClient()
	if err != nil {
		return nil, err
	}
	opts := image.Options{Root: g.root, Registry: reg, InUse: g.inUse}
	if v := os.Getenv("BERTH_MAX_CONCURRENT_LAYERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("BERTH_MAX_CONCURRENT_LAYERS=%q: want a positive number", v)
		}
		opts.MaxConcurrentLayers = n
	}
	return image.Open(opts)
}

// signalContext ends on SIGINT or SIGTERM, so an interrupted pull stops
// cleanly and keeps what it received for the next one.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func addImageCommands(root *cobra.Command, g *globalOptions) {
	imageCmd := &cobra.Command{Use: "image", Short: "Manage images"}
	root.AddCommand(newPullCommand(g), newPushCommand(g), newImagesCommand(g, "images"), newRmiCommand(g, "rmi"),
		newTagCommand(g), newSaveCommand(g), newLoadCommand(g), newImportCommand(g), newLoginCommand(g), newLogoutCommand(g), imageCmd)
	imageCmd.AddCommand(newPullCommand(g), newPushCommand(g), newImagesCommand(g, "ls"), newRmiCommand(g, "rm"),
		newTagCommand(g), newSaveCommand(g), newLoadCommand(g), newImportCommand(g), newInspectCommand(g), newPruneCommand(g))
	systemCmd := &cobra.Command{Use: "system", Short: "Manage berth"}
	systemCmd.AddCommand(newDfCommand(g))
	root.AddCommand(systemCmd)
}

func newPullCommand(g *globalOptions) *cobra.Command {
	var platform string
	var quiet, allTags bool
	cmd := &cobra.Command{
		Use:   "pull [OPTIONS] NAME[:TAG|@DIGEST]",
		Short: "Download an image from a registry",
		Args:  cobra.ExactArgs(1),
		RunE: g.withImages(func(ctx context.Context, s *image.Service, args []string) error {
			names := []string{args[0]}
			if allTags {
				var err error
				if names, err = g.allTags(ctx, args[0]); err != nil {
					return err
				}
			}
			for _, n := range names {
				rec, err := pullWithProgress(ctx, s, n, platform, quiet)
				if err != nil {
					return err
				}
				fmt.Println(rec.Name)
			}
			return nil
		}),
	}
	cmd.Flags().StringVar(&platform, "platform", "", "os/arch[/variant] to pull from a multi-platform image (default: this host's)")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the image name")
	cmd.Flags().BoolVarP(&allTags, "all-tags", "a", false, "pull every tag of the repository")
	return cmd
}

// allTags names every tag of the repository name names (which must not
// name a tag or digest itself, as with docker), sorted.
func (g *globalOptions) allTags(ctx context.Context, name string) ([]string, error) {
	last := name[strings.LastIndex(name, "/")+1:]
	if strings.ContainsAny(last, ":@") {
		return nil, fmt.Errorf("tag can't be used with --all-tags/-a")
	}
	ref, err := reference.Parse(name)
	if err != nil {
		return nil, err
	}
	reg, err := g.registryClient()
	if err != nil {
		return nil, err
	}
	tags, err := reg.ListTags(ctx, ref)
	if err != nil {
		return nil, err
	}
	if len(tags) == 0 {
		return nil, fmt.Errorf("%s: the repository has no tags", ref.Name())
	}
	sort.Strings(tags)
	var names []string
	for _, t := range tags {
		tagged, err := ref.WithTag(t)
		if err != nil {
			return nil, err
		}
		names = append(names, tagged.String())
	}
	return names, nil
}

// pullWithProgress pulls, showing progress on stderr (lines in a pipe, a
// live display on a terminal) unless quiet.
func pullWithProgress(ctx context.Context, s *image.Service, name, platform string, quiet bool) (image.Record, error) {
	unpackProcs()
	pp := newProgressPrinter(os.Stderr, quiet, "Downloading")
	if !quiet {
		ref, err := reference.Parse(name)
		if err != nil {
			return image.Record{}, err
		}
		fmt.Fprintf(os.Stderr, "Pulling %s\n", ref.String())
	}
	start := time.Now()
	rec, err := s.Pull(ctx, name, image.PullOptions{Platform: platform, Progress: pp.Progress()})
	pp.Close()
	if err != nil {
		return image.Record{}, err
	}
	if !quiet {
		fmt.Fprintf(os.Stderr, "Digest: %s\nStatus: pulled %s (%s) in %.1fs\n", rec.Target.Digest, rec.Name, rec.Platform, time.Since(start).Seconds())
	}
	return rec, nil
}

func newPushCommand(g *globalOptions) *cobra.Command {
	var quiet bool
	cmd := &cobra.Command{
		Use:   "push [OPTIONS] NAME[:TAG] [DESTINATION]",
		Short: "Upload an image to a registry",
		Args:  cobra.RangeArgs(1, 2),
		RunE: g.withImages(func(ctx context.Context, s *image.Service, args []string) error {
			dest := ""
			if len(args) == 2 {
				dest = args[1]
			}
			pp := newProgressPrinter(os.Stderr, quiet, "Pushing")
			desc, err := s.Push(ctx, args[0], dest, pp.Progress())
			pp.Close()
			if err != nil {
				return err
			}
			if !quiet {
				fmt.Fprintf(os.Stderr, "Digest: %s size: %d\n", desc.Digest, desc.Size)
			}
			fmt.Println(desc.Digest)
			return nil
		}),
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the manifest digest")
	return cmd
}

// imageInfo is what `berth images` knows of an image record, for its
// filters; imageRow is what it prints.
type imageInfo struct {
	Repository string
	Tag        string
	Digest     string
	ID         string
	Created    time.Time
	Size       int64
	Labels     map[string]string
}

// imageRow is one image as docker's images templates see it: every field
// a string, as docker prints them.
type imageRow struct {
	Containers   string
	CreatedAt    string
	CreatedSince string
	Digest       string
	ID           string
	Repository   string
	SharedSize   string
	Size         string
	Tag          string
	UniqueSize   string
	VirtualSize  string
}

func (r imageRow) MarshalJSON() ([]byte, error) {
	type plain imageRow
	return marshalRow(plain(r))
}

func (imageRow) header() any {
	return imageRow{Containers: "CONTAINERS", CreatedAt: "CREATED AT", CreatedSince: "CREATED", Digest: "DIGEST", ID: "IMAGE ID",
		Repository: "REPOSITORY", SharedSize: "SHARED SIZE", Size: "SIZE", Tag: "TAG", UniqueSize: "UNIQUE SIZE", VirtualSize: "SIZE"}
}

const (
	imagesTable        = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
	imagesTableDigests = "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
)

// row is the image's docker row; trunc shortens the ID.
func (i imageInfo) row(now time.Time, trunc bool) imageRow {
	id := i.ID
	if trunc {
		id = shortDigest(id)
	}
	digest := i.Digest
	if digest == "" {
		digest = "<none>"
	}
	return imageRow{Containers: "N/A", CreatedAt: time.Unix(i.Created.Unix(), 0).String(), CreatedSince: humanDuration(now.Sub(i.Created)) + " ago",
		Digest: digest, ID: id, Repository: i.Repository, SharedSize: "N/A", Size: humanBytes(i.Size), Tag: i.Tag, UniqueSize: "N/A",
		VirtualSize: humanSize(i.Size, 4)}
}

func newImagesCommand(g *globalOptions, use string) *cobra.Command {
	var quiet, digests, noTrunc, all bool
	var format string
	var filters []string
	cmd := &cobra.Command{
		Use:     use + " [OPTIONS] [REPOSITORY[:TAG]]",
		Aliases: []string{"list"},
		Short:   "List images",
		Args:    cobra.MaximumNArgs(1),
		RunE: g.withImages(func(ctx context.Context, s *image.Service, args []string) error {
			recs, err := s.List(ctx)
			if err != nil {
				return err
			}
			if len(args) == 1 {
				filters = append(filters, "reference="+args[0])
			}
			var rows []imageInfo
			for _, r := range recs {
				row, err := makeImageInfo(s, r)
				if err != nil {
					return err
				}
				rows = append(rows, row)
			}
			created := func(nameOrID string) (time.Time, error) {
				match, err := s.Get(ctx, nameOrID)
				if err != nil {
					return time.Time{}, err
				}
				return match[0].Created, nil
			}
			rows, err = filterImages(rows, filters, created)
			if err != nil {
				return err
			}
			sort.SliceStable(rows, func(i, j int) bool { return rows[i].Created.After(rows[j].Created) })
			return printImages(os.Stdout, rows, format, quiet, digests, noTrunc)
		}),
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "only image IDs")
	cmd.Flags().BoolVarP(&all, "all", "a", false, "all images (berth has no intermediate images: same as without)")
	cmd.Flags().BoolVar(&digests, "digests", false, "show digests")
	cmd.Flags().BoolVar(&noTrunc, "no-trunc", false, "do not truncate IDs")
	cmd.Flags().StringVar(&format, "format", "table", "table, json, or a Go template ({{.Repository}}, {{.Tag}}, {{.ID}}, {{.Digest}}, {{.Size}}, {{.CreatedSince}})")
	cmd.Flags().StringArrayVarP(&filters, "filter", "f", nil, "reference=PATTERN, before=IMAGE, since=IMAGE, label=KEY[=VALUE], dangling=true|false")
	return cmd
}

func makeImageInfo(s *image.Service, r image.Record) (imageInfo, error) {
	ref, err := reference.Parse(r.Name)
	if err != nil {
		return imageInfo{}, fmt.Errorf("image record %q: %w", r.Name, err)
	}
	row := imageInfo{Repository: ref.FamiliarName(), Tag: ref.Tag(), Digest: r.Target.Digest.String(),
		ID: r.ID(), Created: r.Created, Size: s.Size(r)}
	if row.Tag == "" {
		row.Tag = "<none>"
	}
	if cfg, err := s.Config(r); err == nil {
		row.Labels = cfg.Config.Labels
	}
	return row, nil
}

// filterImages applies docker's image filters; created finds the creation
// time of the image a before= or since= filter names (by the service's own
// name, ID and prefix rules).
func filterImages(rows []imageInfo, filters []string, created func(string) (time.Time, error)) ([]imageInfo, error) {
	for _, f := range filters {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return nil, fmt.Errorf("filter %q: want KEY=VALUE", f)
		}
		var keep func(imageInfo) bool
		switch k {
		case "reference":
			keep = func(r imageInfo) bool {
				for _, cand := range []string{r.Repository + ":" + r.Tag, r.Repository} {
					if ok, _ := path.Match(v, cand); ok {
						return true
					}
				}
				return false
			}
			if _, err := path.Match(v, ""); err != nil {
				return nil, fmt.Errorf("filter %q: bad pattern: %v", f, err)
			}
		case "before", "since":
			at, err := created(v)
			if err != nil {
				return nil, fmt.Errorf("filter %q: %w", f, err)
			}
			if k == "before" {
				keep = func(r imageInfo) bool { return r.Created.Before(at) }
			} else {
				keep = func(r imageInfo) bool { return r.Created.After(at) }
			}
		case "label":
			lk, lv, hasV := strings.Cut(v, "=")
			keep = func(r imageInfo) bool {
				got, ok := r.Labels[lk]
				return ok && (!hasV || got == lv)
			}
		case "dangling":
			if v != "true" && v != "false" {
				return nil, fmt.Errorf("filter %q: dangling takes true or false", f)
			}
			// Every berth image has a name: none is dangling.
			keep = func(imageInfo) bool { return v == "false" }
		default:
			return nil, fmt.Errorf("invalid filter %q (images knows reference, before, since, label, dangling)", k)
		}
		var out []imageInfo
		for _, r := range rows {
			if keep(r) {
				out = append(out, r)
			}
		}
		rows = out
	}
	return rows, nil
}

func printImages(w io.Writer, infos []imageInfo, format string, quiet, digests, noTrunc bool) error {
	if quiet {
		seen := map[string]bool{}
		for _, r := range infos {
			id := shortDigest(r.ID)
			if noTrunc {
				id = r.ID
			}
			if !seen[id] {
				seen[id] = true
				fmt.Fprintln(w, id)
			}
		}
		return nil
	}
	now := time.Now()
	rows := make([]imageRow, 0, len(infos))
	for _, i := range infos {
		rows = append(rows, i.row(now, !noTrunc))
	}
	def := imagesTable
	if digests {
		def = imagesTableDigests
	}
	return printList(w, format, def, rows)
}

func newRmiCommand(g *globalOptions, use string) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   use + " [OPTIONS] IMAGE [IMAGE...]",
		Short: "Remove images",
		Args:  cobra.MinimumNArgs(1),
		RunE: g.withImages(func(ctx context.Context, s *image.Service, args []string) error {
			var errs []error
			for _, a := range args {
				res, err := s.Remove(ctx, a, force)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				for _, u := range res.Untagged {
					fmt.Printf("Untagged: %s\n", familiar(u))
				}
				for _, d := range res.Deleted {
					fmt.Printf("Deleted: %s\n", d)
				}
				if res.GCDeferred {
					fmt.Fprintln(os.Stderr, "berth: a pull is running; unused layers will be removed by the next rmi or `berth image prune`")
				}
			}
			g.pruneVMLayers(s)
			return errors.Join(errs...)
		}),
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "remove even if in use or tagged several times")
	return cmd
}

func familiar(name string) string {
	if ref, err := reference.Parse(name); err == nil {
		return ref.Familiar()
	}
	return name
}

func newTagCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
		Short: "Give an image another name",
		Args:  cobra.ExactArgs(2),
		RunE: g.withImages(func(ctx context.Context, s *image.Service, args []string) error {
			_, err := s.Tag(ctx, args[0], args[1])
			return err
		}),
	}
}

// imageInspect is an image's inspect object: docker's InspectResponse
// (the moby API type). Config is the image config's own (docker's
// extended OCI config, so a Healthcheck in it shows), Descriptor is what
// the name resolved to (a manifest, or an index), as docker's containerd
// image store shows it.
func imageInspect(ctx context.Context, s *image.Service, name string) (mobyimage.InspectResponse, error) {
	all, err := s.List(ctx)
	if err != nil {
		return mobyimage.InspectResponse{}, err
	}
	recs, err := s.Get(ctx, name)
	if err != nil {
		return mobyimage.InspectResponse{}, err
	}
	r := recs[0]
	raw, err := s.ConfigBytes(r)
	if err != nil {
		return mobyimage.InspectResponse{}, err
	}
	var cfg dockerspec.DockerOCIImage
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return mobyimage.InspectResponse{}, fmt.Errorf("image %s: config: %w", r.ID(), err)
	}
	target := r.Target
	o := mobyimage.InspectResponse{ID: r.ID(), Architecture: cfg.Architecture, Os: cfg.OS, OsVersion: cfg.OSVersion,
		Variant: cfg.Variant, Author: cfg.Author, Size: s.Size(r), Config: &cfg.Config,
		RootFS:   mobyimage.RootFS{Type: "layers", Layers: r.DiffIDs},
		RepoTags: []string{}, RepoDigests: []string{}, Descriptor: &target}
	if cfg.Created != nil {
		o.Created = cfg.Created.UTC().Format(time.RFC3339Nano)
	}
	for _, other := range all {
		if other.ID() != r.ID() {
			continue
		}
		if other.Pulled.After(o.Metadata.LastTagTime) {
			o.Metadata.LastTagTime = other.Pulled.UTC()
		}
		ref, err := reference.Parse(other.Name)
		if err != nil {
			continue
		}
		if ref.Tag() != "" {
			o.RepoTags = append(o.RepoTags, ref.FamiliarName()+":"+ref.Tag())
		}
		o.RepoDigests = append(o.RepoDigests, ref.FamiliarName()+"@"+other.Target.Digest.String())
	}
	return o, nil
}

func newInspectCommand(g *globalOptions) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] IMAGE [IMAGE...]",
		Short: "Show details of images (JSON)",
		Args:  cobra.MinimumNArgs(1),
		RunE: g.withImages(func(ctx context.Context, s *image.Service, args []string) error {
			return inspectEach(args, format, func(a string) (any, error) { return imageInspect(ctx, s, a) })
		}),
	}
	cmd.Flags().StringVarP(&format, "format", "f", "json", "json or a Go template")
	return cmd
}

func newPruneCommand(g *globalOptions) *cobra.Command {
	var all, force bool
	var format string
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove unused images, layers and interrupted downloads",
		Args:  cobra.NoArgs,
		RunE: g.withImages(func(ctx context.Context, s *image.Service, args []string) error {
			_ = force // berth does not prompt
			res, err := s.Prune(ctx, all)
			if err != nil {
				return err
			}
			g.pruneVMLayers(s)
			if format == "json" {
				return json.NewEncoder(os.Stdout).Encode(res)
			}
			for _, r := range res.Removed {
				for _, u := range r.Untagged {
					fmt.Printf("Untagged: %s\n", familiar(u))
				}
				for _, d := range r.Deleted {
					fmt.Printf("Deleted: %s\n", d)
				}
			}
			fmt.Printf("Total reclaimed space: %s\n", humanBytes(res.Reclaimed))
			return nil
		}),
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "remove every image no container uses, not only unreferenced data")
	cmd.Flags().BoolVarP(&force, "force", "f", false, "do not prompt (berth never prompts)")
	cmd.Flags().StringVar(&format, "format", "table", "table or json")
	return cmd
}

func newDfCommand(g *globalOptions) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "df [OPTIONS]",
		Short: "Show disk usage",
		Args:  cobra.NoArgs,
		RunE: g.withImages(func(ctx context.Context, s *image.Service, args []string) error {
			u, err := s.DiskUsage(ctx)
			if err != nil {
				return err
			}
			if format == "json" {
				return json.NewEncoder(os.Stdout).Encode(map[string]any{"images": u})
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 8, 3, ' ', 0)
			fmt.Fprintln(tw, "TYPE\tTOTAL\tSIZE\tRECLAIMABLE")
			fmt.Fprintf(tw, "Images\t%d\t%s\t%s\n", u.Images, humanBytes(u.BlobBytes+u.LayerBytes), humanBytes(u.Reclaimable))
			fmt.Fprintf(tw, "  blobs (compressed)\t\t%s\t\n", humanBytes(u.BlobBytes))
			fmt.Fprintf(tw, "  layers (unpacked)\t\t%s\t\n", humanBytes(u.LayerBytes))
			return tw.Flush()
		}),
	}
	cmd.Flags().StringVar(&format, "format", "table", "table or json")
	return cmd
}

// unpackProcs gives the Go scheduler two Ps per CPU for commands that
// unpack layers: they spend much of their time in blocking file system
// calls (each file create is tens of microseconds), and with one P per CPU
// a CPU idles while its goroutine sits in one. Measured on the pull bench:
// 9% faster on 2 CPUs.
func unpackProcs() {
	if n := 2 * runtime.NumCPU(); runtime.GOMAXPROCS(0) < n {
		runtime.GOMAXPROCS(n)
	}
}

// withImages wraps a command body that needs the image service and a
// context that ends on SIGINT or SIGTERM.
func (g *globalOptions) withImages(run func(ctx context.Context, s *image.Service, args []string) error) func(*cobra.Command, []string) error {
	return func(_ *cobra.Command, args []string) error {
		s, err := g.images()
		if err != nil {
			return err
		}
		ctx, cancel := signalContext()
		defer cancel()
		return run(ctx, s, args)
	}
}

// inUse answers rmi's question from the engine's store.
func (g *globalOptions) inUse(ctx context.Context, imageID string) ([]string, error) {
	p := filepath.Join(g.root, "engine", "berth.db")
	if _, err := os.Stat(p); err != nil {
		return nil, nil
	}
	db, err := store.Open(p)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	return db.UsingImage(ctx, imageID)
}
