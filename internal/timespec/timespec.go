// Package timespec reads the times users give docker's commands and API
// filters (--since, --until, until=) in every form docker accepts.
package timespec

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Parse reads a time as docker's --since, --until and until= filters
// take it: an RFC 3339 time, a Unix timestamp, or a duration before now
// (10m). "" is the zero time.
func Parse(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	// A plain number is a Unix timestamp (docker's "--since 0" is all),
	// read exactly: seconds, then up to nine digits of fraction.
	if sec, frac, hasFrac := strings.Cut(s, "."); isDigits(sec) && (!hasFrac || isDigits(frac) && len(frac) <= 9) {
		secs, err := strconv.ParseInt(sec, 10, 64)
		if err == nil {
			var ns int64
			if hasFrac {
				ns, _ = strconv.ParseInt(frac+strings.Repeat("0", 9-len(frac)), 10, 64)
			}
			return time.Unix(secs, ns), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, time.RFC3339} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	// Without a zone, local time (now's), as docker reads them.
	for _, layout := range []string{"2006-01-02T15:04:05.999999999", "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, now.Location()); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time: use RFC 3339, a Unix timestamp or a duration such as 10m", s)
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
