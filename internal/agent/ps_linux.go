package agent

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// psProc is what /proc says of one process.
type psProc struct {
	pid, ppid, pgid, sid, tpgid, nlwp, nice int
	state                                   byte
	tty                                     int
	uid, gid                                int
	comm                                    string
	args                                    []string
	cpu, elapsed                            time.Duration
	started                                 time.Time
	vszKiB, rssKiB                          uint64
}

// clockTicks is USER_HZ, which Linux fixes at 100 for /proc.
const clockTicks = 100

// readPsProc reads /proc/<pid> under procDir; bootTime and uptime are
// the machine's.
func readPsProc(procDir string, pid int, bootTime time.Time, uptime time.Duration) (*psProc, error) {
	dir := procDir + "/" + strconv.Itoa(pid)
	b, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return nil, err
	}
	s := string(b)
	open, closeParen := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || closeParen < open {
		return nil, fmt.Errorf("%s/stat: malformed", dir)
	}
	f := strings.Fields(s[closeParen+1:])
	if len(f) < 22 {
		return nil, fmt.Errorf("%s/stat: malformed", dir)
	}
	n := func(i int) int64 { v, _ := strconv.ParseInt(f[i], 10, 64); return v }
	p := &psProc{pid: pid, comm: s[open+1 : closeParen], state: f[0][0],
		ppid: int(n(1)), pgid: int(n(2)), sid: int(n(3)), tty: int(n(4)), tpgid: int(n(5)),
		nice: int(n(16)), nlwp: int(n(17)), uid: -1, gid: -1}
	p.cpu = time.Duration(n(11)+n(12)) * time.Second / clockTicks
	start := time.Duration(n(19)) * time.Second / clockTicks
	p.started = bootTime.Add(start)
	if p.elapsed = uptime - start; p.elapsed < 0 {
		p.elapsed = 0
	}
	p.vszKiB = uint64(n(20)) / 1024
	p.rssKiB = uint64(n(21)) * uint64(os.Getpagesize()) / 1024
	if st, err := os.ReadFile(dir + "/status"); err == nil {
		for _, l := range strings.Split(string(st), "\n") {
			k, v, _ := strings.Cut(l, ":")
			if ids := strings.Fields(v); len(ids) >= 2 && (k == "Uid" || k == "Gid") {
				id, _ := strconv.Atoi(ids[1]) // the effective one, as ps shows
				if k == "Uid" {
					p.uid = id
				} else {
					p.gid = id
				}
			}
		}
	}
	if cl, err := os.ReadFile(dir + "/cmdline"); err == nil && len(cl) > 0 {
		p.args = strings.Split(strings.TrimRight(string(cl), "\x00"), "\x00")
	}
	return p, nil
}

// machineTimes reads the boot time and uptime under procDir.
func machineTimes(procDir string) (time.Time, time.Duration, uint64) {
	var boot time.Time
	if b, err := os.ReadFile(procDir + "/stat"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "btime "); ok {
				s, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				boot = time.Unix(s, 0)
			}
		}
	}
	var up time.Duration
	if b, err := os.ReadFile(procDir + "/uptime"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			sec, _ := strconv.ParseFloat(f[0], 64)
			up = time.Duration(sec * float64(time.Second))
		}
	}
	var memKiB uint64
	if b, err := os.ReadFile(procDir + "/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "MemTotal:" {
				memKiB, _ = strconv.ParseUint(f[1], 10, 64)
			}
		}
	}
	return boot, up, memKiB
}

// psTable lists pids (those still there) with cols, as ps prints them.
func psTable(procDir string, pids []int, cols []PsColumn, now time.Time) *Top {
	boot, up, memKiB := machineTimes(procDir)
	t := &Top{Rows: [][]string{}}
	for _, c := range cols {
		t.Titles = append(t.Titles, c.Title)
	}
	for _, pid := range pids {
		p, err := readPsProc(procDir, pid, boot, up)
		if err != nil {
			continue // gone meanwhile
		}
		row := make([]string, len(cols))
		for i, c := range cols {
			row[i] = p.field(c.Field, memKiB, now)
		}
		t.Rows = append(t.Rows, row)
	}
	return t
}

func (p *psProc) field(name string, memKiB uint64, now time.Time) string {
	pct := func() float64 {
		if p.elapsed <= 0 {
			return 0
		}
		return float64(p.cpu) / float64(p.elapsed) * 100
	}
	switch name {
	case "pid":
		return strconv.Itoa(p.pid)
	case "ppid":
		return strconv.Itoa(p.ppid)
	case "pgid":
		return strconv.Itoa(p.pgid)
	case "sid":
		return strconv.Itoa(p.sid)
	case "uid", "euid", "user", "euser":
		// Numeric: the guest has no user database of the container's.
		return strconv.Itoa(p.uid)
	case "gid", "egid", "group":
		return strconv.Itoa(p.gid)
	case "c":
		return strconv.Itoa(min(int(pct()), 99))
	case "%cpu", "pcpu":
		return strconv.FormatFloat(pct(), 'f', 1, 64)
	case "%mem", "pmem":
		if memKiB == 0 {
			return "0.0"
		}
		return strconv.FormatFloat(float64(p.rssKiB)/float64(memKiB)*100, 'f', 1, 64)
	case "stime", "start_time", "start", "bsdstart":
		switch {
		case now.Sub(p.started) < 24*time.Hour:
			return p.started.Format("15:04")
		case p.started.Year() == now.Year():
			return p.started.Format("Jan02")
		}
		return p.started.Format("2006")
	case "tty", "tt", "tname":
		return ttyName(p.tty)
	case "time", "cputime":
		s := int(p.cpu / time.Second)
		if d := s / 86400; d > 0 {
			return fmt.Sprintf("%d-%02d:%02d:%02d", d, s%86400/3600, s%3600/60, s%60)
		}
		return fmt.Sprintf("%02d:%02d:%02d", s/3600, s%3600/60, s%60)
	case "etime":
		s := int(p.elapsed / time.Second)
		switch {
		case s >= 86400:
			return fmt.Sprintf("%d-%02d:%02d:%02d", s/86400, s%86400/3600, s%3600/60, s%60)
		case s >= 3600:
			return fmt.Sprintf("%02d:%02d:%02d", s/3600, s%3600/60, s%60)
		}
		return fmt.Sprintf("%02d:%02d", s/60, s%60)
	case "cmd", "args", "command":
		if len(p.args) == 0 {
			return "[" + p.comm + "]"
		}
		return strings.Join(p.args, " ")
	case "comm", "ucmd", "ucomm":
		return p.comm
	case "rss", "rssize", "rsz":
		return strconv.FormatUint(p.rssKiB, 10)
	case "vsz", "vsize":
		return strconv.FormatUint(p.vszKiB, 10)
	case "s", "state":
		return string(p.state)
	case "stat":
		s := string(p.state)
		if p.nice < 0 {
			s += "<"
		} else if p.nice > 0 {
			s += "N"
		}
		if p.pid == p.sid {
			s += "s"
		}
		if p.nlwp > 1 {
			s += "l"
		}
		if p.tty != 0 && p.tpgid == p.pgid {
			s += "+"
		}
		return s
	case "nlwp":
		return strconv.Itoa(p.nlwp)
	case "ni", "nice":
		return strconv.Itoa(p.nice)
	}
	return "-"
}

// ttyName names a controlling terminal by its device number, as ps does
// for the kinds a guest has (ptys, the serial console).
func ttyName(dev int) string {
	if dev == 0 {
		return "?"
	}
	major := (dev >> 8) & 0xfff
	minor := (dev & 0xff) | ((dev >> 12) & 0xfff00)
	switch {
	case major >= 136 && major <= 143:
		return "pts/" + strconv.Itoa((major-136)*256+minor)
	case major == 4 && minor < 64:
		return "tty" + strconv.Itoa(minor)
	case major == 4:
		return "ttyS" + strconv.Itoa(minor-64)
	case major == 5 && minor == 1:
		return "console"
	}
	return "?"
}
