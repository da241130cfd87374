package timespec

import (
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	now := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Time
	}{
		{"", time.Time{}},
		{"10m", now.Add(-10 * time.Minute)},
		{"1h30m", now.Add(-90 * time.Minute)},
		{"250ms", now.Add(-250 * time.Millisecond)},
		{"-5m", now.Add(5 * time.Minute)},
		{"2024-01-02T03:04:05Z", time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)},
		{"2024-01-02T03:04:05+02:00", time.Date(2024, 1, 2, 1, 4, 5, 0, time.UTC)},
		{"2024-01-02T03:04:05.123456789Z", time.Date(2024, 1, 2, 3, 4, 5, 123456789, time.UTC)},
		{"2024-01-02T03:04:05", time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)},
		{"2024-01-02", time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC)},
		{"1700000000", time.Unix(1700000000, 0)},
		{"1700000000.5", time.Unix(1700000000, 500_000_000)},
		{"1700000000.25", time.Unix(1700000000, 250_000_000)},
		{"1700000000.000", time.Unix(1700000000, 0)},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in, now)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if !got.Equal(tt.want) {
			t.Errorf("Parse(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	now := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	for _, in := range []string{"yesterday", "10x", "10 m", "2024-13-01", "2024-01-02T25:00:00Z", "1.2.3", "12:00"} {
		if got, err := Parse(in, now); err == nil {
			t.Errorf("Parse(%q) = %v, want an error", in, got)
		}
	}
}

func TestParseZeroIsEpoch(t *testing.T) {
	now := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	got, err := Parse("0", now)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(time.Unix(0, 0)) {
		t.Errorf("Parse(\"0\") = %v, want the epoch", got)
	}
}

func TestParseLocalZone(t *testing.T) {
	zone := time.FixedZone("UTC+2", 2*60*60)
	now := time.Date(2024, 5, 6, 7, 8, 9, 0, zone)
	for in, want := range map[string]time.Time{
		"2024-01-02T03:04:05": time.Date(2024, 1, 2, 3, 4, 5, 0, zone),
		"2024-01-02":          time.Date(2024, 1, 2, 0, 0, 0, 0, zone),
	} {
		got, err := Parse(in, now)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Equal(want) {
			t.Errorf("Parse(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestParseNanoseconds(t *testing.T) {
	got, err := Parse("1700000000.123456789", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Unix(1700000000, 123456789); !got.Equal(want) {
		t.Errorf("parseTime = %v, want %v", got, want)
	}
}
