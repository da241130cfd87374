//go:build linux

package engine

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"time"
)

// Log drivers: how a container's monitor keeps its output.
const (
	// LogJSONFile is docker's json-file: a JSON object a line, with
	// "log", "stream" and "time" (the default, recorded as "").
	LogJSONFile = "json-file"
	// LogK8sFile is the CRI's log format (podman's name for it),
	// "TIME STREAM F|P CONTENT" a line: what a kubelet and crictl read.
	LogK8sFile = "k8s-file"
	// LogNone keeps nothing: output is read and dropped.
	LogNone = "none"
)

// ErrLogNotReadable is `logs` of a container whose driver keeps nothing.
var ErrLogNotReadable = errors.New(`configured logging driver does not support reading`)

// checkLogDriver validates --log-driver and the options that depend on
// it, returning the driver as recorded ("" for json-file).
func checkLogDriver(o CreateOptions) (string, error) {
	switch o.LogDriver {
	case "", LogJSONFile, "local":
		// docker's local driver is a binary format of its own;
		// berth keeps json-file, which every docker tool reads.
		if o.LogPath != "" {
			return "", fmt.Errorf("--log-opt path: only the k8s-file driver writes where it is told: %w", ErrInvalid)
		}
		return "", nil
	case LogK8sFile:
		if o.LogTag != "" {
			return "", fmt.Errorf("--log-opt tag: the k8s-file format has no tags (json-file has): %w", ErrInvalid)
		}
		if o.LogPath != "" && !filepath.IsAbs(o.LogPath) {
			return "", fmt.Errorf("--log-opt path=%s: give an absolute path: %w", o.LogPath, ErrInvalid)
		}
		return LogK8sFile, nil
	case LogNone:
		if o.LogPath != "" || o.LogTag != "" {
			return "", fmt.Errorf("--log-driver none keeps no log: path and tag do not apply: %w", ErrInvalid)
		}
		return LogNone, nil
	}
	return "", fmt.Errorf("--log-driver %q: berth writes json-file (the default), k8s-file (the CRI's format) or none: %w", o.LogDriver, ErrInvalid)
}

// logPathOf is where a container's log goes: docker's name for
// json-file, the given path or <id>.log for k8s-file, nothing for none.
func logPathOf(dir, id, driver, path string) string {
	switch driver {
	case LogNone:
		return ""
	case LogK8sFile:
		if path != "" {
			return filepath.Clean(path)
		}
		return filepath.Join(dir, id+".log")
	}
	return filepath.Join(dir, id+"-json.log")
}

// monitorLogFormat is the monitor's name for a driver.
func monitorLogFormat(driver string) string {
	switch driver {
	case LogK8sFile:
		return "cri"
	case LogNone:
		return "none"
	}
	return "json"
}

// parseCRILine decodes one line of the CRI format. A P (partial) line's
// content has no newline of its own; an F line's gets one back.
func parseCRILine(line []byte) (LogEntry, error) {
	ts, rest, ok := bytes.Cut(line, []byte(" "))
	if !ok {
		return LogEntry{}, errors.New("no stream after the time")
	}
	stream, rest, ok := bytes.Cut(rest, []byte(" "))
	if !ok || (string(stream) != "stdout" && string(stream) != "stderr") {
		return LogEntry{}, errors.New("no stdout or stderr after the time")
	}
	tag, content, ok := bytes.Cut(rest, []byte(" "))
	if !ok && len(rest) == 1 {
		tag, content, ok = rest, nil, true // an empty partial
	}
	if !ok || len(tag) == 0 {
		return LogEntry{}, errors.New("no tag after the stream")
	}
	t, err := time.Parse(time.RFC3339Nano, string(ts))
	if err != nil {
		return LogEntry{}, err
	}
	ent := LogEntry{Stream: string(stream), Time: t, Log: string(content)}
	// The tag may carry more (F:other), the first letter says the kind.
	if tag[0] == 'F' {
		ent.Log += "\n"
	}
	return ent, nil
}
