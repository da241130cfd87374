//go:build linux

package engine

import (
	"testing"
	"time"
)

// The monitor's schedule: interval and timeout, and the start interval
// with the start period only when both are set (a start interval without
// a start period never applies, as docker's).
func TestHealthEnv(t *testing.T) {
	cmd := []string{"CMD-SHELL", "true"}
	for _, tc := range []struct {
		h    *HealthConfig
		want string
	}{
		{nil, ""},
		{&HealthConfig{Test: []string{"NONE"}, Interval: time.Second}, ""},
		{&HealthConfig{Test: cmd}, "30000,30000"},
		{&HealthConfig{Test: cmd, Interval: 2 * time.Second, Timeout: 500 * time.Millisecond}, "2000,500"},
		{&HealthConfig{Test: cmd, Interval: time.Minute, StartInterval: 100 * time.Millisecond, StartPeriod: 20 * time.Second}, "60000,30000,100,20000"},
		{&HealthConfig{Test: cmd, StartInterval: 100 * time.Millisecond}, "30000,30000"},
	} {
		if got := healthEnv(tc.h); got != tc.want {
			t.Errorf("healthEnv(%+v) = %q, want %q", tc.h, got, tc.want)
		}
	}
}

// --health-start-interval (the API's StartInterval) applies over the
// image's, is refused below 1ms, and needs a health command.
func TestMergeHealthStartInterval(t *testing.T) {
	image := &HealthConfig{Test: []string{"CMD", "probe"}, Interval: time.Second, StartInterval: time.Second}
	h, err := mergeHealth(image, CreateOptions{HealthStartInterval: 50 * time.Millisecond})
	if err != nil || h.StartInterval != 50*time.Millisecond || h.Interval != time.Second {
		t.Errorf("merged: %+v, %v", h, err)
	}
	if _, err := mergeHealth(image, CreateOptions{HealthStartInterval: time.Microsecond}); err == nil {
		t.Error("a start interval under 1ms was taken")
	}
	if _, err := mergeHealth(nil, CreateOptions{HealthStartInterval: time.Second}); err == nil {
		t.Error("a start interval without a health command was taken")
	}
	if _, err := mergeHealth(image, CreateOptions{NoHealthcheck: true, HealthStartInterval: time.Second}); err == nil {
		t.Error("--no-healthcheck with a start interval was taken")
	}
}
