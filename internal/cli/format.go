package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"text/template"
)

// writeJSON writes v as indented JSON (listings indent by two, inspect
// output by four, as docker does).
func writeJSON(v any, indent string) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", indent)
	return enc.Encode(v)
}

// parseFormat parses a --format Go template ("table " prefix allowed), with
// docker's json function.
func parseFormat(name, format string) (*template.Template, error) {
	t, err := template.New(name).Funcs(template.FuncMap{
		"json": func(v any) string { b, _ := json.Marshal(v); return string(b) },
	}).Parse(strings.TrimPrefix(format, "table "))
	if err != nil {
		return nil, fmt.Errorf("--format: %w", err)
	}
	return t, nil
}

// printTemplate writes each row through a --format template, a line each.
func printTemplate[T any](name, format string, rows []T) error {
	t, err := parseFormat(name, format)
	if err != nil {
		return err
	}
	for _, r := range rows {
		if err := t.Execute(os.Stdout, r); err != nil {
			return err
		}
		fmt.Println()
	}
	return nil
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
