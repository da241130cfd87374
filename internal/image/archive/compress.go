package archive

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Compression identifies the compression applied to a layer blob.
type Compression int

const (
	// None is an uncompressed tar stream.
	None Compression = iota
	// Gzip is a gzip (RFC 1952) stream, possibly multi-member.
	Gzip
	// Zstd is a Zstandard (RFC 8878) stream.
	Zstd
)

// String returns "none", "gzip" or "zstd".
func (c Compression) String() string {
	switch c {
	case None:
		return "none"
	case Gzip:
		return "gzip"
	case Zstd:
		return "zstd"
	default:
		return fmt.Sprintf("Compression(%d)", int(c))
	}
}

var (
	magicGzip  = []byte{0x1f, 0x8b}
	magicZstd  = []byte{0x28, 0xb5, 0x2f, 0xfd}
	magicXz    = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
	magicBzip2 = []byte{'B', 'Z', 'h'}
)

// ErrUnsupportedCompression is returned (wrapped) for a layer whose
// compression or media type this package cannot decode.
var ErrUnsupportedCompression = errors.New("archive: unsupported compression")

// DetectCompression reports the compression of a stream from its first
// bytes. Anything that is neither gzip nor zstd is reported as None.
func DetectCompression(peek []byte) Compression {
	switch {
	case bytes.HasPrefix(peek, magicGzip):
		return Gzip
	case bytes.HasPrefix(peek, magicZstd):
		return Zstd
	default:
		return None
	}
}

// zstdMaxWindow bounds the decoder window (and so its memory); 128 MiB is
// far above what any layer producer uses (zstd's default is 8 MiB).
const zstdMaxWindow = 128 << 20

// DecompressStream sniffs the compression of r and returns a reader of the
// decompressed bytes. Close releases the decompressor (for zstd, its
// goroutines and buffers); it does not close r. A stream that is xz or
// bzip2 is rejected with ErrUnsupportedCompression rather than being passed
// through as if it were a tar.
func DecompressStream(r io.Reader) (io.ReadCloser, Compression, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	peek, err := br.Peek(len(magicXz))
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, None, fmt.Errorf("archive: sniffing compression: %w", err)
	}
	switch c := DetectCompression(peek); c {
	case Gzip:
		if bin := externalGzip(); bin != "" {
			rc, err := startExternalGzip(bin, br)
			return rc, c, err
		}
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, c, fmt.Errorf("archive: gzip header: %w", err)
		}
		return zr, c, nil
	case Zstd:
		d, err := zstd.NewReader(br,
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(zstdMaxWindow),
		)
		if err != nil {
			return nil, c, fmt.Errorf("archive: zstd decoder: %w", err)
		}
		return d.IOReadCloser(), c, nil
	}
	switch {
	case bytes.HasPrefix(peek, magicXz):
		return nil, None, fmt.Errorf("%w: stream is xz", ErrUnsupportedCompression)
	case bytes.HasPrefix(peek, magicBzip2):
		return nil, None, fmt.Errorf("%w: stream is bzip2", ErrUnsupportedCompression)
	}
	return io.NopCloser(br), None, nil
}

// OCI and Docker layer media types.
const (
	MediaTypeOCILayer                     = "application/vnd.oci.image.layer.v1.tar"
	MediaTypeOCILayerGzip                 = "application/vnd.oci.image.layer.v1.tar+gzip"
	MediaTypeOCILayerZstd                 = "application/vnd.oci.image.layer.v1.tar+zstd"
	MediaTypeOCILayerNondistributable     = "application/vnd.oci.image.layer.nondistributable.v1.tar"
	MediaTypeOCILayerNondistributableGzip = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
	MediaTypeOCILayerNondistributableZstd = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
	MediaTypeDockerLayer                  = "application/vnd.docker.image.rootfs.diff.tar"
	MediaTypeDockerLayerGzip              = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	MediaTypeDockerLayerZstd              = "application/vnd.docker.image.rootfs.diff.tar.zstd"
	MediaTypeDockerLayerForeignGzip       = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
)

// MediaTypeCompression maps an OCI or Docker layer media type to the
// compression of its blob. Unknown media types (including non-layer types
// such as configs or manifests) yield an error wrapping
// ErrUnsupportedCompression.
func MediaTypeCompression(mediaType string) (Compression, error) {
	switch mediaType {
	case MediaTypeOCILayer, MediaTypeOCILayerNondistributable, MediaTypeDockerLayer:
		return None, nil
	case MediaTypeOCILayerGzip, MediaTypeOCILayerNondistributableGzip,
		MediaTypeDockerLayerGzip, MediaTypeDockerLayerForeignGzip:
		return Gzip, nil
	case MediaTypeOCILayerZstd, MediaTypeOCILayerNondistributableZstd, MediaTypeDockerLayerZstd:
		return Zstd, nil
	}
	return None, fmt.Errorf("%w: unknown layer media type %q", ErrUnsupportedCompression, mediaType)
}
