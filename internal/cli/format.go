package cli

import (
	"encoding/json"
	"fmt"
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
