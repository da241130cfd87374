package archive

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
)

// Gzip is the costliest step of a pull: Go's best inflater (klauspost)
// runs at about a third of the speed of ISA-L's igzip, Intel's
// SIMD-optimised deflate. Like containerd with unpigz, berth hands gzip
// streams to the igzip program when it is installed (Debian's isal
// package); berth's binary is static and Debian ships ISA-L only as a
// shared library, so a child process it is. The child runs as nobody with
// no capabilities, reading the compressed stream on stdin and writing the
// tar on stdout: a decoder bug fed a hostile layer gets an unprivileged
// process with two pipes, not the root pull. Everything it outputs is
// still hashed against the diffID and the compressed input against the
// blob digest, as with the Go decoder.
//
// BERTH_DISABLE_IGZIP=1 turns it off; BERTH_IGZIP=/path picks the binary.

var (
	igzipOnce sync.Once
	igzipPath string
)

// externalGzip returns the igzip binary to use, or "".
func externalGzip() string {
	igzipOnce.Do(func() {
		if os.Getenv("BERTH_DISABLE_IGZIP") == "1" {
			return
		}
		if p := os.Getenv("BERTH_IGZIP"); p != "" {
			igzipPath = p
			return
		}
		if p, err := exec.LookPath("igzip"); err == nil {
			igzipPath = p
		}
	})
	return igzipPath
}

// GzipDecoder names the gzip decoder DecompressStream uses: "igzip (PATH)"
// or "klauspost/compress".
func GzipDecoder() string {
	if p := externalGzip(); p != "" {
		return "igzip (" + p + ")"
	}
	return "klauspost/compress"
}

// pipeSize is asked for both pipes: fewer wake-ups per megabyte.
const pipeSize = 1 << 20

// processReader is the stdout of a decoder child. Read returns io.EOF only
// once the child exited 0 and the rest of the input (anything after the
// gzip stream) was read, so a hasher of the input sees every byte; a child
// that failed turns into an error naming it and quoting its stderr.
type processReader struct {
	cmd    *exec.Cmd
	out    *os.File
	bout   *bufio.Reader // out, read in big gulps: tar reads 512-byte headers
	in     io.Reader
	stderr *bytes.Buffer
	copied chan error // the stdin feeder's result
	err    error      // sticky, after the end
	done   bool
}

func startExternalGzip(bin string, in io.Reader) (io.ReadCloser, error) {
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, err
	}
	setPipeSize(inW)
	setPipeSize(outW)
	stderr := &bytes.Buffer{}
	cmd := exec.Command(bin, "-d", "-c")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, &limitedBuffer{b: stderr, max: 4 << 10}
	cmd.Env = []string{}
	cmd.SysProcAttr = unprivileged()
	if err := cmd.Start(); err != nil {
		inR.Close()
		inW.Close()
		outR.Close()
		outW.Close()
		return nil, fmt.Errorf("archive: start %s: %w", bin, err)
	}
	inR.Close()
	outW.Close()
	p := &processReader{cmd: cmd, out: outR, bout: bufio.NewReaderSize(outR, pipeSize), in: in, stderr: stderr, copied: make(chan error, 1)}
	go func() {
		// Big pipe writes, whatever the reader does best: hide any WriteTo
		// (bufio's would copy in its own small steps).
		buf := make([]byte, 1<<20)
		_, err := io.CopyBuffer(inW, struct{ io.Reader }{in}, buf)
		inW.Close()
		p.copied <- err
	}()
	return p, nil
}

func (p *processReader) Read(b []byte) (int, error) {
	if p.done {
		return 0, p.err
	}
	n, err := p.bout.Read(b)
	if err == io.EOF {
		p.done = true
		p.err = p.finish()
		if n > 0 {
			return n, nil
		}
		return 0, p.err
	}
	if err != nil {
		return n, fmt.Errorf("archive: reading %s: %w", p.cmd.Path, err)
	}
	return n, nil
}

// finish waits for the feeder and the child and reports how they ended.
func (p *processReader) finish() error {
	copyErr := <-p.copied
	waitErr := p.cmd.Wait()
	p.out.Close()
	// The input's own failure (a dropped connection) explains the
	// child's (a truncated stream) and is what the caller must see.
	if copyErr != nil && !errors.Is(copyErr, os.ErrClosed) && !isBrokenPipe(copyErr) {
		return copyErr
	}
	if waitErr != nil {
		return fmt.Errorf("archive: gzip stream rejected by %s (%v): %s", p.cmd.Path, waitErr, bytes.TrimSpace(p.stderr.Bytes()))
	}
	if copyErr != nil { // the child stopped reading early: bytes after the gzip stream
		if _, err := io.Copy(io.Discard, p.in); err != nil {
			return err
		}
	}
	return io.EOF
}

// Close stops the child if the stream was not read to its end.
func (p *processReader) Close() error {
	if !p.done {
		p.done = true
		p.err = errors.New("archive: decompressor closed")
		p.cmd.Process.Kill()
		p.out.Close()
		<-p.copied
		p.cmd.Wait()
	}
	return nil
}

type limitedBuffer struct {
	b   *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
