// Package userns is what berth needs to run containers in user namespaces
// of their own (`--userns=auto`): the subordinate ID ranges of the `berth`
// user in /etc/subuid and /etc/subgid, the choice of a free block in them
// for a container, a throw-away user namespace that carries a mapping (the
// handle idmapped mounts are made with), and file system work done as a
// mapped user.
package userns

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// User is the name whose subordinate ranges berth gives containers.
const User = "berth"

// DefaultSize is the number of IDs a container gets without auto:size=N
// (a whole 16-bit ID space, as docker and podman give).
const DefaultSize = 65536

// EntrySize is the count of the ranges berth adds for itself when
// /etc/subuid or /etc/subgid has none: room for 1024 containers of
// DefaultSize at once.
const EntrySize = 1024 * DefaultSize

// Range is a block of host IDs: [Start, Start+Size).
type Range struct {
	Start, Size uint32
}

// End is the first ID after the range (as a uint64: it may be 2^32).
func (r Range) End() uint64 { return uint64(r.Start) + uint64(r.Size) }

func (r Range) overlaps(o Range) bool {
	return uint64(r.Start) < o.End() && uint64(o.Start) < r.End()
}

func (r Range) String() string { return fmt.Sprintf("%d-%d", r.Start, r.End()-1) }

// Entry is one line of /etc/subuid or /etc/subgid: OWNER:START:COUNT,
// OWNER a user's name or uid.
type Entry struct {
	Owner string
	Range
}

// Line is the entry as the file has it.
func (e Entry) Line() string { return fmt.Sprintf("%s:%d:%d", e.Owner, e.Start, e.Size) }

// ParseSubIDs reads the entries of a subordinate ID file. Lines it cannot
// read (comments, blank lines, damaged ones) are skipped, as shadow's
// tools skip them.
func ParseSubIDs(data []byte) []Entry {
	var out []Entry
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, ":")
		if len(f) != 3 || f[0] == "" {
			continue
		}
		start, err1 := strconv.ParseUint(f[1], 10, 32)
		count, err2 := strconv.ParseUint(f[2], 10, 32)
		if err1 != nil || err2 != nil || count == 0 || start+count > 1<<32 {
			continue
		}
		out = append(out, Entry{Owner: f[0], Range: Range{Start: uint32(start), Size: uint32(count)}})
	}
	return out
}

// Owned are the ranges of the entries whose owner is one of names (a
// user's name and, when it exists, its uid).
func Owned(entries []Entry, names ...string) []Range {
	var out []Range
	for _, e := range entries {
		if slices.Contains(names, e.Owner) {
			out = append(out, e.Range)
		}
	}
	return out
}

// minFreeStart is where a range berth adds for itself may begin: shadow's
// default SUB_UID_MIN, above every system and regular user's own ID.
const minFreeStart = 100000

// FreeRange is a block of size IDs that overlaps no entry of either list,
// at or after minFreeStart, aligned to 65536 (so that a container's IDs
// read as base+N), the lowest such block after the last entry (dockerd's
// choice for its dockremap user: it stays out of the way of the ranges
// useradd hands out from the bottom).
func FreeRange(size uint32, lists ...[]Entry) (Range, error) {
	start := uint64(minFreeStart)
	for _, l := range lists {
		for _, e := range l {
			start = max(start, e.End())
		}
	}
	const align = 65536
	start = (start + align - 1) / align * align
	if start+uint64(size) > 1<<32-1 {
		// The ID space above the last entry is used up: look for a
		// hole below it.
		var all []Range
		for _, l := range lists {
			for _, e := range l {
				all = append(all, e.Range)
			}
		}
		if r, ok := firstFit([]Range{{Start: minFreeStart, Size: 1<<32 - 1 - minFreeStart}}, all, size, align); ok {
			return r, nil
		}
		return Range{}, fmt.Errorf("no block of %d IDs is free in the 32-bit ID space outside the existing entries", size)
	}
	return Range{Start: uint32(start), Size: size}, nil
}

// ErrExhausted: no block of the size asked for is free in the pool.
var ErrExhausted = errors.New("no free range left")

// Allocate picks the lowest block of size IDs inside pool (the berth
// user's ranges) that overlaps none of taken (the blocks containers hold).
func Allocate(pool, taken []Range, size uint32) (Range, error) {
	if size == 0 {
		return Range{}, errors.New("a range of 0 IDs")
	}
	if r, ok := firstFit(pool, taken, size, 1); ok {
		return r, nil
	}
	return Range{}, ErrExhausted
}

// firstFit is the lowest block of size IDs, its start a multiple of align
// within its pool range, inside one range of pool and clear of taken.
func firstFit(pool, taken []Range, size uint32, align uint64) (Range, bool) {
	pool = slices.Clone(pool)
	slices.SortFunc(pool, func(a, b Range) int { return int64Cmp(int64(a.Start), int64(b.Start)) })
	taken = slices.Clone(taken)
	slices.SortFunc(taken, func(a, b Range) int { return int64Cmp(int64(a.Start), int64(b.Start)) })
	for _, p := range pool {
		start := uint64(p.Start)
		for {
			start = (start + align - 1) / align * align
			if start+uint64(size) > p.End() {
				break
			}
			cand := Range{Start: uint32(start), Size: size}
			moved := false
			for _, t := range taken {
				if cand.overlaps(t) {
					start = t.End()
					moved = true
					break
				}
			}
			if !moved {
				return cand, true
			}
		}
	}
	return Range{}, false
}

func int64Cmp(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// ParseMode reads a --userns value berth creates a namespace for: "auto"
// or "auto:size=N". ok is false for any other value (host, "", ...).
func ParseMode(mode string) (size uint32, ok bool, err error) {
	rest, isAuto := strings.CutPrefix(mode, "auto")
	if !isAuto || rest != "" && !strings.HasPrefix(rest, ":") {
		return 0, false, nil
	}
	size = DefaultSize
	if rest == "" {
		return size, true, nil
	}
	for _, opt := range strings.Split(rest[1:], ",") {
		k, v, _ := strings.Cut(opt, "=")
		switch k {
		case "size":
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil || n == 0 || n > 1<<31 {
				return 0, true, fmt.Errorf("--userns %s: size must be a number of IDs from 1 to 2147483648", mode)
			}
			size = uint32(n)
		default:
			return 0, true, fmt.Errorf("--userns %s: unknown option %q (auto takes size=N)", mode, k)
		}
	}
	return size, true, nil
}
