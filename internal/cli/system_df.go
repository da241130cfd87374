//go:build linux

package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/spf13/cobra"
)

// dfRow is one line of docker's system df: every field a string.
type dfRow struct {
	Active      string
	Reclaimable string
	Size        string
	TotalCount  string
	Type        string
}

func (r dfRow) MarshalJSON() ([]byte, error) {
	type plain dfRow
	return marshalRow(plain(r))
}

func (dfRow) header() any {
	return dfRow{Active: "ACTIVE", Reclaimable: "RECLAIMABLE", Size: "SIZE", TotalCount: "TOTAL", Type: "TYPE"}
}

const dfTable = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"

// reclaimable is docker's wording: the size, and its share of the total.
func reclaimable(n, total int64) string {
	if total <= 0 {
		return humanSize(n, 4)
	}
	return fmt.Sprintf("%s (%d%%)", humanSize(n, 4), n*100/total)
}

// replaceSystemDf gives `system df` docker's rows on Linux, where there
// are containers and volumes besides images.
func replaceSystemDf(root *cobra.Command, g *globalOptions) {
	sys := findCommand(root, "system")
	if sys == nil {
		return
	}
	if old := findCommand(root, "system", "df"); old != nil {
		sys.RemoveCommand(old)
	}
	sys.AddCommand(newSystemDfCommand(g))
}

func newSystemDfCommand(g *globalOptions) *cobra.Command {
	var format string
	var verbose bool
	cmd := &cobra.Command{
		Use:   "df [OPTIONS]",
		Short: "Show disk usage: images, containers, local volumes, build cache",
		Args:  cobra.NoArgs,
		RunE: g.withEngine(func(ctx context.Context, e *engine.Engine, _ []string) error {
			d, err := collectDiskUsage(ctx, e)
			if err != nil {
				return err
			}
			if verbose && (format == "" || format == "table") {
				return d.writeVerbose(os.Stdout)
			}
			return printList(os.Stdout, format, dfTable, d.rows())
		}),
	}
	cmd.Flags().StringVar(&format, "format", "table", "table, json, or a Go template (\"table \" in front for a header and columns)")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "show each image, container and volume")
	return cmd
}

type diskUsage struct {
	images     []imageInfo
	imageUsers map[string]int // image ID -> containers using it
	layerBytes int64
	containers []*engine.Container
	rw         map[string]int64
	volumes    []*engine.Volume
	volUsers   map[string][]string
	volBytes   map[string]int64
}

func collectDiskUsage(ctx context.Context, e *engine.Engine) (*diskUsage, error) {
	d := &diskUsage{imageUsers: map[string]int{}, rw: map[string]int64{}, volBytes: map[string]int64{}}
	s := e.Images()
	recs, err := s.List(ctx)
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		info, err := makeImageInfo(s, r)
		if err != nil {
			return nil, err
		}
		d.images = append(d.images, info)
	}
	u, err := s.DiskUsage(ctx)
	if err != nil {
		return nil, err
	}
	d.layerBytes = u.LayerBytes
	if d.containers, err = e.List(ctx); err != nil {
		return nil, err
	}
	for _, c := range d.containers {
		d.imageUsers[c.Image]++
		d.rw[c.ID] = dirSize(e.ContainerPaths(c.ID).Upper)
	}
	if d.volumes, d.volUsers, err = e.Volumes(ctx); err != nil {
		return nil, err
	}
	for _, v := range d.volumes {
		d.volBytes[v.Name] = dirSize(v.Mountpoint)
	}
	return d, nil
}

func (d *diskUsage) rows() []dfRow {
	ids := map[string]int64{}
	var unused int64
	for _, i := range d.images {
		if _, seen := ids[i.ID]; !seen && d.imageUsers[i.ID] == 0 {
			unused += i.Size
		}
		ids[i.ID] = i.Size
	}
	active := 0
	for id := range ids {
		if d.imageUsers[id] > 0 {
			active++
		}
	}
	var ctrSize, ctrFree int64
	running := 0
	for _, c := range d.containers {
		ctrSize += d.rw[c.ID]
		if c.State.Running {
			running++
		} else {
			ctrFree += d.rw[c.ID]
		}
	}
	var volSize, volFree int64
	inUse := 0
	for _, v := range d.volumes {
		volSize += d.volBytes[v.Name]
		if len(d.volUsers[v.Name]) > 0 {
			inUse++
		} else {
			volFree += d.volBytes[v.Name]
		}
	}
	return []dfRow{
		{Type: "Images", TotalCount: strconv.Itoa(len(ids)), Active: strconv.Itoa(active), Size: humanSize(d.layerBytes, 4), Reclaimable: reclaimable(min(unused, d.layerBytes), d.layerBytes)},
		{Type: "Containers", TotalCount: strconv.Itoa(len(d.containers)), Active: strconv.Itoa(running), Size: humanSize(ctrSize, 4), Reclaimable: reclaimable(ctrFree, ctrSize)},
		{Type: "Local Volumes", TotalCount: strconv.Itoa(len(d.volumes)), Active: strconv.Itoa(inUse), Size: humanSize(volSize, 4), Reclaimable: reclaimable(volFree, volSize)},
		// berth builds no images: no build cache.
		{Type: "Build Cache", TotalCount: "0", Active: "0", Size: "0B", Reclaimable: "0B"},
	}
}

// writeVerbose is system df -v: each image, container and volume.
func (d *diskUsage) writeVerbose(w io.Writer) error {
	now := time.Now()
	tw := tabwriter.NewWriter(w, 10, 1, 3, ' ', 0)
	fmt.Fprint(w, "Images space usage:\n\n")
	fmt.Fprintln(tw, "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE\tSHARED SIZE\tUNIQUE SIZE\tCONTAINERS")
	for _, i := range d.images {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", i.Repository, i.Tag, shortDigest(i.ID), humanDuration(now.Sub(i.Created))+" ago",
			humanBytes(i.Size), "0B", humanSize(i.Size, 4), d.imageUsers[i.ID])
	}
	tw.Flush()
	fmt.Fprint(w, "\nContainers space usage:\n\n")
	fmt.Fprintln(tw, "CONTAINER ID\tIMAGE\tCOMMAND\tLOCAL VOLUMES\tSIZE\tCREATED\tSTATUS\tNAMES")
	for i := len(d.containers) - 1; i >= 0; i-- {
		c := d.containers[i]
		r := makePsRow(c, now, true, humanBytes(d.rw[c.ID]))
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Image, r.Command, r.LocalVolumes, r.Size, r.RunningFor, r.Status, r.Names)
	}
	tw.Flush()
	fmt.Fprint(w, "\nLocal Volumes space usage:\n\n")
	fmt.Fprintln(tw, "VOLUME NAME\tLINKS\tSIZE")
	for _, v := range d.volumes {
		fmt.Fprintf(tw, "%s\t%d\t%s\n", v.Name, len(d.volUsers[v.Name]), humanBytes(d.volBytes[v.Name]))
	}
	tw.Flush()
	fmt.Fprint(w, "\nBuild cache usage: 0B\n\n")
	fmt.Fprintln(tw, "CACHE ID\tCACHE TYPE\tSIZE\tCREATED\tLAST USED\tUSAGE\tSHARED")
	return tw.Flush()
}
