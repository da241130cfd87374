//go:build linux

package cli

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/image"
	"github.com/spf13/cobra"
)

// historyRow is one line of `image history`, docker's fields (all
// strings).
type historyRow struct {
	Comment      string
	CreatedAt    string
	CreatedBy    string
	CreatedSince string
	ID           string
	Size         string
}

func (r historyRow) MarshalJSON() ([]byte, error) {
	type plain historyRow
	return marshalRow(plain(r))
}

func (historyRow) header() any {
	return historyRow{Comment: "COMMENT", CreatedAt: "CREATED AT", CreatedBy: "CREATED BY", CreatedSince: "CREATED", ID: "IMAGE", Size: "SIZE"}
}

const historyTable = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"

func newHistoryCommand(g *globalOptions) *cobra.Command {
	var quiet, noTrunc bool
	var human = true
	var format string
	cmd := &cobra.Command{
		Use:   "history [OPTIONS] IMAGE",
		Short: "Show the history of an image: its layers and the steps that made them",
		Args:  cobra.ExactArgs(1),
		RunE: g.withImages(func(ctx context.Context, s *image.Service, args []string) error {
			recs, err := s.Get(ctx, args[0])
			if err != nil {
				return err
			}
			rec := recs[0]
			cfg, err := s.Config(rec)
			if err != nil {
				return err
			}
			now := time.Now()
			var rows []historyRow
			layer := len(rec.DiffIDs) - 1
			// Newest first, as docker prints it; a step that made no
			// layer has size 0; only the newest step names the image.
			for i := len(cfg.History) - 1; i >= 0; i-- {
				h := cfg.History[i]
				var size int64
				if !h.EmptyLayer && layer >= 0 {
					if info, err := s.Snapshots().Stat(rec.DiffIDs[layer]); err == nil {
						size = info.Size
					}
					layer--
				}
				r := historyRow{ID: "<missing>", CreatedBy: h.CreatedBy, Comment: h.Comment}
				if i == len(cfg.History)-1 {
					r.ID = rec.ID()
					if !noTrunc {
						r.ID = strings.TrimPrefix(r.ID, "sha256:")[:12]
					}
				}
				if h.Created != nil {
					r.CreatedAt = h.Created.Format(time.RFC3339)
					r.CreatedSince = humanDuration(now.Sub(*h.Created)) + " ago"
					if !human {
						r.CreatedSince = r.CreatedAt
					}
				}
				r.Size = humanBytes(size)
				if !human {
					r.Size = fmt.Sprint(size)
				}
				if !noTrunc && len(r.CreatedBy) > 45 {
					r.CreatedBy = r.CreatedBy[:44] + "…"
				}
				rows = append(rows, r)
			}
			if quiet {
				for _, r := range rows {
					fmt.Println(r.ID)
				}
				return nil
			}
			return printList(os.Stdout, format, historyTable, rows)
		}),
	}
	fl := cmd.Flags()
	fl.BoolVarP(&quiet, "quiet", "q", false, "only the image IDs")
	fl.BoolVar(&noTrunc, "no-trunc", false, "do not truncate")
	fl.BoolVarP(&human, "human", "H", true, "sizes and dates in human form")
	fl.StringVar(&format, "format", "", "table, json, or a Go template over each row")
	return cmd
}
