package engine

import (
	"strings"
	"time"
)

// HealthConfig is a container's healthcheck (docker's HealthConfig, from
// the image's HEALTHCHECK or --health-*). Durations are nanoseconds in
// JSON, as docker's.
type HealthConfig struct {
	// Test is ["NONE"] (disabled), ["CMD", args...] or ["CMD-SHELL", cmd].
	Test        []string      `json:"Test,omitempty"`
	Interval    time.Duration `json:"Interval,omitempty"`
	Timeout     time.Duration `json:"Timeout,omitempty"`
	StartPeriod time.Duration `json:"StartPeriod,omitempty"`
	Retries     int           `json:"Retries,omitempty"`
	// StartInterval is the interval while the container is starting,
	// within StartPeriod (docker 25's); zero: Interval.
	StartInterval time.Duration `json:"StartInterval,omitempty"`
}

// docker's defaults.
const (
	DefaultHealthInterval = 30 * time.Second
	DefaultHealthTimeout  = 30 * time.Second
	DefaultHealthRetries  = 3
	// healthLogLen is how many results docker keeps.
	healthLogLen = 5
	// healthOutputMax is how much of a probe's output is kept.
	healthOutputMax = 4096
)

// Health statuses.
const (
	HealthStarting  = "starting"
	HealthHealthy   = "healthy"
	HealthUnhealthy = "unhealthy"
)

// Health is the healthcheck's state (docker's Health).
type Health struct {
	Status        string         `json:"Status"`
	FailingStreak int            `json:"FailingStreak"`
	Log           []HealthResult `json:"Log"`
}

// HealthResult is one probe (docker's HealthcheckResult).
type HealthResult struct {
	Start    time.Time `json:"Start"`
	End      time.Time `json:"End"`
	ExitCode int       `json:"ExitCode"`
	Output   string    `json:"Output"`
}

// enabled says whether h asks for probes.
func (h *HealthConfig) enabled() bool {
	return h != nil && len(h.Test) > 0 && h.Test[0] != "NONE"
}

// withDefaults fills docker's defaults in (zero means default).
func (h HealthConfig) withDefaults() HealthConfig {
	if h.Interval <= 0 {
		h.Interval = DefaultHealthInterval
	}
	if h.Timeout <= 0 {
		h.Timeout = DefaultHealthTimeout
	}
	if h.Retries <= 0 {
		h.Retries = DefaultHealthRetries
	}
	return h
}

// command is the probe's argv.
func (h *HealthConfig) command() []string {
	switch h.Test[0] {
	case "CMD":
		return h.Test[1:]
	case "CMD-SHELL":
		return []string{"/bin/sh", "-c", strings.Join(h.Test[1:], " ")}
	}
	return h.Test // a bare command, as docker accepts from the API
}
