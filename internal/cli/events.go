//go:build linux

package cli

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"text/template"
	"time"

	"github.com/berth-dev/berth/internal/events"
	"github.com/berth-dev/berth/internal/timespec"
	"github.com/spf13/cobra"
)

func newEventsCommand(g *globalOptions) *cobra.Command {
	var since, until, format string
	var filters []string
	cmd := &cobra.Command{
		Use:   "events [OPTIONS]",
		Short: "Show berth's events (all processes'), and follow them until interrupted or --until",
		Args:  cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			now := time.Now()
			var o events.ReadOptions
			var err error
			if since != "" {
				if o.Since, err = timespec.Parse(since, now); err != nil {
					return fmt.Errorf("--since: %w", err)
				}
			}
			if until != "" {
				if o.Until, err = timespec.Parse(until, now); err != nil {
					return fmt.Errorf("--until: %w", err)
				}
			}
			f, err := events.ParseFilter(filters)
			if err != nil {
				return err
			}
			var tmpl *template.Template
			switch format {
			case "", "json":
			default:
				if tmpl, err = parseFormat("events", format); err != nil {
					return err
				}
			}
			out := bufio.NewWriter(os.Stdout)
			write := func(m events.Message) error {
				if !f.Match(m) || !events.InNamespace(m, g.namespace) {
					return nil
				}
				switch {
				case format == "json":
					b, _ := json.Marshal(m)
					out.Write(append(b, '\n'))
				case tmpl != nil:
					if err := tmpl.Execute(out, m); err != nil {
						return fmt.Errorf("--format: %w", err)
					}
					out.WriteByte('\n')
				default:
					out.WriteString(eventLine(m) + "\n")
				}
				// A follower's reader sees each event as it comes.
				return out.Flush()
			}
			ctx, cancel := signalContext()
			defer cancel()
			j := events.ForRoot(g.root)
			// docker: with --until in the past it prints and ends;
			// otherwise it follows (from --since, else from now) until
			// --until or an interrupt.
			if !o.Until.IsZero() && !o.Until.After(now) {
				err = j.Read(ctx, o, write)
			} else {
				err = j.Follow(ctx, o, write)
			}
			if ferr := out.Flush(); err == nil {
				err = ferr
			}
			if ctx.Err() != nil && err == nil {
				return nil
			}
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&since, "since", "", "show events since this time (RFC 3339, Unix time, or a duration such as 10m)")
	fl.StringVar(&until, "until", "", "stop at this time")
	fl.StringArrayVarP(&filters, "filter", "f", nil, "type=, event=, container=, image=, label=, network=, volume=")
	fl.StringVar(&format, "format", "", "json, or a Go template over each event")
	return cmd
}

// eventLine is docker's text form of an event.
func eventLine(m events.Message) string {
	keys := make([]string, 0, len(m.Actor.Attributes))
	for k := range m.Actor.Attributes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	attrs := make([]string, len(keys))
	for i, k := range keys {
		attrs[i] = k + "=" + m.Actor.Attributes[k]
	}
	line := m.When().UTC().Format("2006-01-02T15:04:05.000000000Z07:00") + " " + m.Type + " " + m.Action + " " + m.Actor.ID
	if len(attrs) > 0 {
		line += " (" + strings.Join(attrs, ", ") + ")"
	}
	return line
}
