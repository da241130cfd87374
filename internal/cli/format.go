package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"text/template"
	"time"
	"unicode"
)

// writeJSON writes v as indented JSON (listings indent by two, inspect
// output by four, as docker does).
func writeJSON(v any, indent string) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", indent)
	return enc.Encode(v)
}

// templateFuncs are the functions docker's --format templates have, in
// every command: json, split, join, title, lower, upper, pad, truncate.
var templateFuncs = template.FuncMap{
	"json": func(v any) string {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		enc.Encode(v)
		return strings.TrimSpace(b.String())
	},
	"split":    strings.Split,
	"join":     joinAny,
	"title":    titleCase,
	"lower":    strings.ToLower,
	"upper":    strings.ToUpper,
	"pad":      padSpaces,
	"truncate": truncateString,
}

// headerFuncs stand for templateFuncs while a table's header is written:
// each gives back the column's name (pad still pads it), so
// "table {{upper .Names}}" is headed NAMES.
var headerFuncs = template.FuncMap{
	"json":     func(v any) string { return fmt.Sprint(v) },
	"split":    func(v, _ string) string { return v },
	"join":     func(v, _ string) string { return v },
	"title":    func(v string) string { return v },
	"lower":    func(v string) string { return v },
	"upper":    func(v string) string { return v },
	"pad":      padSpaces,
	"truncate": func(v string, _ int) string { return v },
}

// joinAny is docker's join, which also takes the []any an inspect
// template sees for a JSON array.
func joinAny(v any, sep string) (string, error) {
	switch x := v.(type) {
	case []string:
		return strings.Join(x, sep), nil
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = fmt.Sprint(e)
		}
		return strings.Join(parts, sep), nil
	case nil:
		return "", nil
	}
	return "", fmt.Errorf("join: want a list, got %T", v)
}

// titleCase upper-cases the first letter of each word.
func titleCase(s string) string {
	prev := ' '
	return strings.Map(func(r rune) rune {
		defer func() { prev = r }()
		if unicode.IsSpace(prev) || unicode.IsPunct(prev) {
			return unicode.ToTitle(r)
		}
		return r
	}, s)
}

// padSpaces puts spaces before and after a non-empty string.
func padSpaces(s string, before, after int) string {
	if s == "" {
		return s
	}
	return strings.Repeat(" ", max(before, 0)) + s + strings.Repeat(" ", max(after, 0))
}

// truncateString keeps the first n bytes.
func truncateString(s string, n int) string {
	if n < 0 || len(s) <= n {
		return s
	}
	return s[:n]
}

// expandEscapes turns the two characters \t and \n of a --format into a
// tab and a newline, as docker does.
func expandEscapes(format string) string {
	return strings.NewReplacer(`\t`, "\t", `\n`, "\n").Replace(format)
}

// parseFormat parses a --format Go template ("table " prefix allowed), with
// docker's functions.
func parseFormat(name, format string) (*template.Template, error) {
	if format == "json" {
		format = "{{json .}}"
	}
	if rest, ok := strings.CutPrefix(format, "table"); ok {
		format = strings.TrimSpace(rest)
	}
	t, err := template.New(name).Funcs(templateFuncs).Parse(expandEscapes(format))
	if err != nil {
		return nil, fmt.Errorf("--format: %w", err)
	}
	return t, nil
}

// listRow is a row of a listing (ps, images, network ls, volume ls, ...):
// its exported fields and methods are what docker's templates see for it;
// header gives the value a table's header is written from (each field
// holding its column's name).
type listRow interface {
	header() any
}

// printList writes rows as docker writes listings: format "" or "table"
// is def (a "table ..." template), "json" is {{json .}} (one object a
// line), "table TEMPLATE" a header and columns aligned as docker's, and
// any other template a line per row.
func printList[T listRow](w io.Writer, format, def string, rows []T) error {
	switch format {
	case "", "table":
		format = def
	case "json":
		format = "{{json .}}"
	}
	rest, table := strings.CutPrefix(format, "table")
	if table {
		format = strings.TrimSpace(rest)
	}
	format = expandEscapes(format)
	t, err := template.New("").Funcs(templateFuncs).Parse(format)
	if err != nil {
		return fmt.Errorf("template parsing error: %w", err)
	}
	out := w
	var tw *tabwriter.Writer
	if table {
		tw = tabwriter.NewWriter(w, 10, 1, 3, ' ', 0)
		out = tw
		h, err := template.New("").Funcs(headerFuncs).Parse(format)
		if err != nil {
			return fmt.Errorf("template parsing error: %w", err)
		}
		var zero T
		var b bytes.Buffer
		if err := h.Execute(&b, zero.header()); err == nil {
			b.WriteByte('\n')
			out.Write(b.Bytes())
		}
	}
	for _, r := range rows {
		var b bytes.Buffer
		if err := t.Execute(&b, r); err != nil {
			if tw != nil {
				tw.Flush()
			}
			return fmt.Errorf("template: %w", err)
		}
		b.WriteByte('\n')
		out.Write(b.Bytes())
	}
	if tw != nil {
		return tw.Flush()
	}
	return nil
}

// marshalRow is a row's JSON as docker writes it: its fields in order,
// with HTML characters escaped (docker's rows marshal themselves, so
// "<none>" comes out as "\u003cnone\u003e").
func marshalRow(v any) ([]byte, error) { return json.Marshal(v) }

// joinLabels is docker's {{.Labels}}: k=v pairs joined by commas (sorted,
// where docker's order is the map's).
func joinLabels(labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+"="+labels[k])
	}
	return strings.Join(parts, ",")
}

// labelHeader is the column name docker gives {{.Label "KEY"}}: the
// key's last dotted part, dashes and underscores made spaces.
func labelHeader(key string) string {
	parts := strings.Split(key, ".")
	return strings.NewReplacer("-", " ", "_", " ").Replace(parts[len(parts)-1])
}

// inspectEach prints what get finds for each argument (printInspect),
// then reports the arguments it did not find.
func inspectEach(args []string, format string, get func(string) (any, error)) error {
	var out []any
	var errs []error
	for _, a := range args {
		o, err := get(a)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, o)
	}
	if err := printInspect(out, format); err != nil {
		return err
	}
	return errors.Join(errs...)
}

// printInspect prints objects as a JSON array, or each through a template.
func printInspect(objs []any, format string) error {
	if format == "" || format == "json" {
		if objs == nil {
			objs = []any{}
		}
		return writeJSON(objs, "    ")
	}
	t, err := parseFormat("inspect", format)
	if err != nil {
		return err
	}
	for _, o := range objs {
		// Templates see the JSON field names, as with docker.
		b, _ := json.Marshal(o)
		var m map[string]any
		json.Unmarshal(b, &m)
		integralNumbers(m)
		if err := t.Execute(os.Stdout, m); err != nil {
			return err
		}
		fmt.Println()
	}
	return nil
}

// integralNumbers turns the whole numbers JSON decoding made float64 into
// int64, in place: docker's templates see typed fields, so
// {{.HostConfig.Memory}} prints 134217728, not 1.34217728e+08, and eq
// compares them with integers.
func integralNumbers(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = integralNumbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = integralNumbers(e)
		}
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<63 {
			return int64(x)
		}
	}
	return v
}

// humanSize is docker's size wording (units of 1000) with prec
// significant digits.
func humanSize(n int64, prec int) string {
	f := float64(n)
	units := []string{"B", "kB", "MB", "GB", "TB", "PB"}
	i := 0
	for f >= 1000 && i < len(units)-1 {
		f /= 1000
		i++
	}
	return fmt.Sprintf("%.*g%s", prec, f, units[i])
}

// humanDuration is docker's wording of an age: seconds, minutes, rounded
// hours, days, weeks, months from 60 days, years from two.
func humanDuration(d time.Duration) string {
	if s := int(d.Seconds()); s < 1 {
		return "Less than a second"
	} else if s == 1 {
		return "1 second"
	} else if s < 60 {
		return fmt.Sprintf("%d seconds", s)
	}
	if m := int(d.Minutes()); m == 1 {
		return "About a minute"
	} else if m < 60 {
		return fmt.Sprintf("%d minutes", m)
	}
	switch h := int(d.Hours() + 0.5); {
	case h == 1:
		return "About an hour"
	case h < 48:
		return fmt.Sprintf("%d hours", h)
	case h < 24*7*2:
		return fmt.Sprintf("%d days", h/24)
	case h < 24*30*2:
		return fmt.Sprintf("%d weeks", h/24/7)
	case h < 24*365*2:
		return fmt.Sprintf("%d months", h/24/30)
	}
	return fmt.Sprintf("%d years", int(d.Hours())/24/365)
}
