//go:build linux

package engine

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/template"
)

// logTagInfo is what a --log-opt tag template sees: docker's logger.Info
// methods ({{.ID}}, {{.Name}}, {{.ImageName}}, ...).
type logTagInfo struct{ c *Container }

func truncID(id string) string {
	if _, rest, ok := strings.Cut(id, ":"); ok {
		id = rest
	}
	return id[:min(len(id), 12)]
}

func (i logTagInfo) ID() string          { return truncID(i.c.ID) }
func (i logTagInfo) FullID() string      { return i.c.ID }
func (i logTagInfo) Name() string        { return i.c.Name }
func (i logTagInfo) ImageID() string     { return truncID(i.c.Image) }
func (i logTagInfo) ImageFullID() string { return i.c.Image }
func (i logTagInfo) ImageName() string   { return i.c.Config.Image }
func (i logTagInfo) DaemonName() string  { return "berth" }
func (i logTagInfo) Hostname() string    { return i.c.Config.Hostname }
func (i logTagInfo) Command() string {
	return strings.TrimSpace(i.c.Path + " " + strings.Join(i.c.Args, " "))
}

// logTagFuncs are the functions of docker's templates that a tag may use.
var logTagFuncs = template.FuncMap{
	"join":  strings.Join,
	"lower": strings.ToLower,
	"upper": strings.ToUpper,
	"split": strings.Split,
	"title": func(s string) string {
		if s == "" {
			return s
		}
		return strings.ToUpper(s[:1]) + s[1:]
	},
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
}

// maxLogAttrs bounds the attrs the monitor writes into every line.
const maxLogAttrs = 4096

// logAttrs evaluates the container's --log-opt tag into the JSON object
// the monitor writes as each line's "attrs" ("" for none), as docker's
// json-file driver does.
func logAttrs(c *Container) (string, error) {
	if c.HostConfig.LogTag == "" {
		return "", nil
	}
	t, err := template.New("tag").Funcs(logTagFuncs).Parse(c.HostConfig.LogTag)
	if err != nil {
		return "", fmt.Errorf("--log-opt tag=%s: %w: %w", c.HostConfig.LogTag, err, ErrInvalid)
	}
	var b strings.Builder
	if err := t.Execute(&b, logTagInfo{c}); err != nil {
		return "", fmt.Errorf("--log-opt tag=%s: %w: %w", c.HostConfig.LogTag, err, ErrInvalid)
	}
	if b.Len() == 0 {
		return "", nil
	}
	data, err := json.Marshal(map[string]string{"tag": b.String()})
	if err != nil {
		return "", err
	}
	if len(data) > maxLogAttrs {
		return "", fmt.Errorf("--log-opt tag=%s: the tag is longer than %d bytes: %w", c.HostConfig.LogTag, maxLogAttrs, ErrInvalid)
	}
	return string(data), nil
}
