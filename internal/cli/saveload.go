package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/berth-dev/berth/internal/image"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func newSaveCommand(g *globalOptions) *cobra.Command {
	var output, format string
	cmd := &cobra.Command{
		Use:   "save [OPTIONS] IMAGE [IMAGE...]",
		Short: "Write images to a tar archive (docker-archive or oci-archive)",
		Args:  cobra.MinimumNArgs(1),
		RunE: g.withImages(func(ctx context.Context, s *image.Service, args []string) error {
			f, err := image.ParseArchiveFormat(format)
			if err != nil {
				return err
			}
			if output == "" || output == "-" {
				if term.IsTerminal(int(os.Stdout.Fd())) {
					return errors.New("save: refusing to write an archive to a terminal; use -o FILE or redirect stdout")
				}
				bw := bufio.NewWriterSize(os.Stdout, 1<<20)
				if err := s.Save(ctx, bw, args, f); err != nil {
					return err
				}
				return bw.Flush()
			}
			// Temp + rename: an interrupted save never leaves a truncated
			// archive under the name asked for.
			tmp, err := os.CreateTemp(filepath.Dir(output), "."+filepath.Base(output)+".tmp*")
			if err != nil {
				return err
			}
			defer os.Remove(tmp.Name())
			bw := bufio.NewWriterSize(tmp, 1<<20)
			if err := s.Save(ctx, bw, args, f); err != nil {
				tmp.Close()
				return err
			}
			if err := bw.Flush(); err != nil {
				tmp.Close()
				return err
			}
			if err := tmp.Chmod(0o644); err != nil {
				tmp.Close()
				return err
			}
			if err := tmp.Close(); err != nil {
				return err
			}
			return os.Rename(tmp.Name(), output)
		}),
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "write to FILE instead of stdout")
	cmd.Flags().StringVar(&format, "format", "docker-archive", "docker-archive or oci-archive")
	return cmd
}

func newLoadCommand(g *globalOptions) *cobra.Command {
	var input, name, platform string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "load [OPTIONS]",
		Short: "Load images from a tar archive (docker-archive or oci-archive, optionally compressed)",
		Args:  cobra.NoArgs,
		RunE: g.withImages(func(ctx context.Context, s *image.Service, args []string) error {
			r, closeInput, err := openInput(input, "load: give -i FILE or pipe an archive to stdin")
			if err != nil {
				return err
			}
			defer closeInput()
			unpackProcs()
			recs, err := s.Load(ctx, r, image.LoadOptions{Name: name, Platform: platform})
			if err != nil {
				return err
			}
			for _, rec := range recs {
				if quiet {
					fmt.Println(rec.Name)
				} else {
					fmt.Printf("Loaded image: %s (%s)\n", familiar(rec.Name), shortDigest(rec.ID()))
				}
			}
			return nil
		}),
	}
	cmd.Flags().StringVarP(&input, "input", "i", "", "read from FILE instead of stdin")
	cmd.Flags().StringVar(&name, "name", "", "name for images the archive does not name (REPO[:TAG])")
	cmd.Flags().StringVar(&platform, "platform", "", "os/arch[/variant] to load from a multi-platform archive")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the names loaded")
	return cmd
}

// openInput opens a command's input, buffered: the file name names, or
// stdin for "" or "-", which must not be a terminal (onTerminal says what
// to do instead).
func openInput(name, onTerminal string) (io.Reader, func(), error) {
	if name != "" && name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, nil, err
		}
		return bufio.NewReaderSize(f, 1<<20), func() { f.Close() }, nil
	}
	if term.IsTerminal(int(os.Stdin.Fd())) {
		return nil, nil, errors.New(onTerminal)
	}
	return bufio.NewReaderSize(os.Stdin, 1<<20), func() {}, nil
}
