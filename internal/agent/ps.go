package agent

import (
	"fmt"
	"slices"
	"strings"
)

// The guest has no ps(1): the initramfs holds the berth binary alone. Top
// in a VM therefore formats what ps would print from the guest's /proc
// (ps_linux.go), for the option forms docker's and berth's callers use:
// -o lists (with key=TITLE), -e/-A (every process: the container's are
// all there are), -f (full format, as `docker top` prints by default) and
// BSD "aux"; anything else is refused by name, never ignored.

// PsColumn is one column of a listing: the field it shows and its title.
type PsColumn struct {
	Field, Title string
}

// psFields are the fields the guest can show, with ps's titles.
var psFields = map[string]string{
	"pid": "PID", "ppid": "PPID", "pgid": "PGID", "sid": "SID",
	"uid": "UID", "euid": "UID", "user": "USER", "euser": "USER", "gid": "GID", "egid": "GID", "group": "GROUP",
	"c": "C", "%cpu": "%CPU", "pcpu": "%CPU", "%mem": "%MEM", "pmem": "%MEM",
	"stime": "STIME", "start_time": "START", "start": "START", "bsdstart": "START",
	"tty": "TT", "tt": "TT", "tname": "TTY",
	"time": "TIME", "cputime": "TIME", "etime": "ELAPSED",
	"cmd": "CMD", "args": "COMMAND", "command": "COMMAND", "comm": "COMMAND", "ucmd": "CMD", "ucomm": "COMMAND",
	"rss": "RSS", "rssize": "RSS", "rsz": "RSZ", "vsz": "VSZ", "vsize": "VSZ",
	"stat": "STAT", "s": "S", "state": "S", "nlwp": "NLWP", "ni": "NI", "nice": "NI",
}

func psFieldList() string {
	keys := make([]string, 0, len(psFields))
	for k := range psFields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return strings.Join(keys, ",")
}

// ParsePsArgs turns ps options into the columns to show; none means
// -ef. An option or field the guest cannot show is an error naming it.
func ParsePsArgs(args []string) ([]PsColumn, error) {
	var cols []PsColumn
	full, bsdUser := false, false
	if len(args) == 0 {
		full = true
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-o" || a == "o" || a == "--format":
			if i+1 == len(args) {
				return nil, fmt.Errorf("ps option %s needs a list of fields", a)
			}
			i++
			c, err := parsePsFormat(args[i])
			if err != nil {
				return nil, err
			}
			cols = append(cols, c...)
		case strings.HasPrefix(a, "-o") || strings.HasPrefix(a, "--format="):
			c, err := parsePsFormat(strings.TrimPrefix(strings.TrimPrefix(a, "--format="), "-o"))
			if err != nil {
				return nil, err
			}
			cols = append(cols, c...)
		case strings.HasPrefix(a, "-") && len(a) > 1 && strings.Trim(a[1:], "eAaxfd") == "":
			// Selections (every process: the container's are all the
			// guest lists) and -f.
			full = full || strings.Contains(a, "f")
		case !strings.HasPrefix(a, "-") && a != "" && strings.Trim(a, "auxw") == "":
			bsdUser = bsdUser || strings.Contains(a, "u")
		default:
			return nil, fmt.Errorf("ps option %q is not available in a VM's guest (it has no ps: use -e, -f, aux or -o with %s)", a, psFieldList())
		}
	}
	switch {
	case len(cols) > 0:
		return cols, nil
	case bsdUser:
		return columns("user", "pid", "%cpu", "%mem", "vsz", "rss", "tty=TTY", "stat", "start", "time", "args=COMMAND"), nil
	case full:
		return columns("uid", "pid", "ppid", "c", "stime", "tty=TTY", "time", "args=CMD"), nil
	}
	return columns("pid", "tty=TTY", "time", "comm=CMD"), nil
}

func columns(spec ...string) []PsColumn {
	var out []PsColumn
	for _, s := range spec {
		c, _ := parsePsFormat(s)
		out = append(out, c...)
	}
	return out
}

// parsePsFormat parses one -o list: fields separated by commas or
// spaces, "field=TITLE" renaming one (its title is the rest of the
// argument, as ps takes it).
func parsePsFormat(list string) ([]PsColumn, error) {
	var out []PsColumn
	for list != "" {
		item := list
		if i := strings.IndexAny(list, ", ="); i >= 0 && list[i] == '=' {
			item, list = list, ""
		} else if i >= 0 {
			item, list = list[:i], list[i+1:]
		} else {
			list = ""
		}
		field, title, renamed := strings.Cut(item, "=")
		if field == "" {
			continue
		}
		def, ok := psFields[strings.ToLower(field)]
		if !ok {
			return nil, fmt.Errorf("ps field %q is not available in a VM's guest (it has no ps; fields: %s)", field, psFieldList())
		}
		if !renamed {
			title = def
		}
		out = append(out, PsColumn{Field: strings.ToLower(field), Title: title})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("ps -o: no fields")
	}
	return out, nil
}
