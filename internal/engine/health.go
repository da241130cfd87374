//go:build linux

package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/berth-dev/berth/internal/image"
)

// mergeHealth applies --health-* and --no-healthcheck over the image's.
func mergeHealth(image *HealthConfig, o CreateOptions) (*HealthConfig, error) {
	if o.NoHealthcheck {
		if o.HealthCmd != "" || o.HealthInterval != 0 || o.HealthTimeout != 0 || o.HealthStartPeriod != 0 || o.HealthStartInterval != 0 || o.HealthRetries != 0 {
			return nil, fmt.Errorf("--no-healthcheck conflicts with the --health-* options: %w", ErrInvalid)
		}
		return &HealthConfig{Test: []string{"NONE"}}, nil
	}
	var h HealthConfig
	if image != nil {
		h = *image
	}
	if o.HealthCmd != "" {
		h.Test = []string{"CMD-SHELL", o.HealthCmd}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
		dst  *time.Duration
	}{{"--health-interval", o.HealthInterval, &h.Interval}, {"--health-timeout", o.HealthTimeout, &h.Timeout}, {"--health-start-period", o.HealthStartPeriod, &h.StartPeriod}, {"--health-start-interval", o.HealthStartInterval, &h.StartInterval}} {
		if d.v < 0 || d.v > 0 && d.v < time.Millisecond && d.name != "--health-start-period" {
			return nil, fmt.Errorf("%s %s: it must be at least 1ms: %w", d.name, d.v, ErrInvalid)
		}
		if d.v > 0 {
			*d.dst = d.v
		}
	}
	if o.HealthRetries < 0 {
		return nil, fmt.Errorf("--health-retries %d: it must not be negative: %w", o.HealthRetries, ErrInvalid)
	}
	if o.HealthRetries > 0 {
		h.Retries = o.HealthRetries
	}
	if len(h.Test) == 0 {
		if o.HealthInterval != 0 || o.HealthTimeout != 0 || o.HealthStartPeriod != 0 || o.HealthStartInterval != 0 || o.HealthRetries != 0 {
			return nil, fmt.Errorf("--health-* options need a health command (--health-cmd or the image's HEALTHCHECK): %w", ErrInvalid)
		}
		return nil, nil
	}
	return &h, nil
}

// imageHealthcheck is the image config's docker Healthcheck, if any (an
// unreadable one is ignored: the image runs without it).
func imageHealthcheck(images *image.Service, rec image.Record) *HealthConfig {
	b, err := images.ConfigBytes(rec)
	if err != nil {
		return nil
	}
	var cfg struct {
		Config struct {
			Healthcheck *HealthConfig `json:"Healthcheck"`
		} `json:"config"`
	}
	if json.Unmarshal(b, &cfg) != nil {
		return nil
	}
	return cfg.Config.Healthcheck
}

// RunHealthcheck runs one probe of a running container and records the
// result (the monitor forks a process for it at every interval): the
// probe runs as an exec in the container and is killed at its timeout.
// It returns the health status after the probe ("" if none was run).
func (e *Engine) RunHealthcheck(ctx context.Context, id string) (string, error) {
	c, err := e.get(ctx, id)
	if err != nil {
		return "", err
	}
	if c.State.Status != StatusRunning || !c.Config.Healthcheck.enabled() {
		return "", nil
	}
	// In a probe process (a group of its own, see monitor.c): whatever
	// the probe started goes when it is done, a hung one with it.
	if syscall.Getpgrp() == os.Getpid() {
		defer syscall.Kill(-os.Getpid(), syscall.SIGKILL)
	}
	run := c.State.StartedAt
	h := c.Config.Healthcheck.withDefaults()
	r, w, err := os.Pipe()
	if err != nil {
		return "", err
	}
	res := HealthResult{Start: time.Now().UTC()}
	p, err := e.Exec(ctx, id, ExecOptions{Cmd: h.command(), Stdout: w, Stderr: w})
	w.Close()
	if err != nil {
		r.Close()
		res.End, res.ExitCode, res.Output = time.Now().UTC(), -1, err.Error()
		if ee, ok := err.(*ExecError); ok {
			res.ExitCode = ee.Code
		}
		return e.recordHealth(ctx, id, run, h, res)
	}
	var mu sync.Mutex
	var output bytes.Buffer
	eof := make(chan struct{})
	go func() {
		defer close(eof)
		buf := make([]byte, 32<<10)
		for {
			n, err := r.Read(buf)
			mu.Lock()
			if output.Len() < healthOutputMax {
				output.Write(buf[:min(n, healthOutputMax-output.Len())])
			}
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	done := make(chan int, 1)
	go func() {
		code, err := p.Wait()
		if err != nil {
			code = -1
		}
		done <- code
	}()
	timedOut := false
	select {
	case res.ExitCode = <-done:
	case <-time.After(h.Timeout):
		// A probe that hangs is killed at its timeout (what it
		// started goes with this process's group at the end).
		timedOut = true
		p.Signal(syscall.SIGKILL)
		<-done
		res.ExitCode = -1
	}
	res.End = time.Now().UTC()
	if timedOut {
		res.Output = fmt.Sprintf("Health check exceeded timeout (%s)", h.Timeout)
	} else {
		// A child the probe left in the background may keep the pipe
		// open: what came within a second is the output.
		select {
		case <-eof:
		case <-time.After(time.Second):
		}
		mu.Lock()
		res.Output = output.String()
		mu.Unlock()
	}
	return e.recordHealth(ctx, id, run, h, res)
}

// recordHealth adds a probe's result to the record, docker's way: a pass
// makes it healthy; Retries failures in a row unhealthy; failures in the
// start period do not count while it is still starting. It returns the
// status after.
func (e *Engine) recordHealth(ctx context.Context, id string, run time.Time, h HealthConfig, res HealthResult) (string, error) {
	var before, after string
	c, err := e.update(ctx, id, func(r *Container) error {
		if r.State.Status != StatusRunning || !r.State.StartedAt.Equal(run) {
			return nil // stopped, or a probe of the last run
		}
		if r.State.Health == nil {
			r.State.Health = &Health{Status: HealthStarting}
		}
		hs := r.State.Health
		before = hs.Status
		hs.Log = append(hs.Log, res)
		if len(hs.Log) > healthLogLen {
			hs.Log = hs.Log[len(hs.Log)-healthLogLen:]
		}
		switch {
		case res.ExitCode == 0:
			hs.Status, hs.FailingStreak = HealthHealthy, 0
		case hs.Status == HealthStarting && res.Start.Sub(r.State.StartedAt) < h.StartPeriod:
			// The start period: not counted.
		default:
			hs.FailingStreak++
			if hs.FailingStreak >= h.Retries {
				hs.Status = HealthUnhealthy
			}
		}
		after = hs.Status
		return nil
	})
	if err != nil {
		return "", err
	}
	if after != before && after != "" {
		e.emit(c, "health_status: "+after, nil)
	}
	return after, nil
}

// healthEnv is what the monitor needs to schedule probes, in
// milliseconds: the interval and the timeout (it kills a probe process
// that outlives its timeout by far), and with a start interval, it and
// the start period (probes come every start interval while the
// container is starting within its start period, as docker's do).
func healthEnv(h *HealthConfig) string {
	if !h.enabled() {
		return ""
	}
	d := h.withDefaults()
	ms := func(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }
	env := ms(d.Interval) + "," + ms(d.Timeout)
	if d.StartInterval > 0 && d.StartPeriod > 0 {
		env += "," + ms(d.StartInterval) + "," + ms(d.StartPeriod)
	}
	return env
}
