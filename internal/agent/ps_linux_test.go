package agent

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParsePsArgs(t *testing.T) {
	titles := func(cols []PsColumn) string {
		var s []string
		for _, c := range cols {
			s = append(s, c.Title)
		}
		return strings.Join(s, " ")
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "UID PID PPID C STIME TTY TIME CMD"},
		{[]string{"-ef"}, "UID PID PPID C STIME TTY TIME CMD"},
		{[]string{"-e"}, "PID TTY TIME CMD"},
		{[]string{"aux"}, "USER PID %CPU %MEM VSZ RSS TTY STAT START TIME COMMAND"},
		// berth's default (engine.DefaultTopArgs).
		{[]string{"-o", "uid,pid,ppid,c,stime", "-o", "tty=TTY", "-o", "time,cmd"}, "UID PID PPID C STIME TTY TIME CMD"},
		{[]string{"-opid,comm"}, "PID COMMAND"},
		{[]string{"-o", "pid,comm=Command Name,x"}, "PID Command Name,x"},
	} {
		cols, err := ParsePsArgs(tc.args)
		if err != nil || titles(cols) != tc.want {
			t.Errorf("ParsePsArgs(%q) = %q, %v; want %q", tc.args, titles(cols), err, tc.want)
		}
	}
	for _, bad := range [][]string{{"-L"}, {"-o", "pid,wchan"}, {"-o"}, {"--sort=pid"}} {
		if _, err := ParsePsArgs(bad); err == nil {
			t.Errorf("ParsePsArgs(%q) accepted", bad)
		}
	}
}

// psTable on this test's own process: the columns ps would show.
func TestPsTableOfThisProcess(t *testing.T) {
	cols, _ := ParsePsArgs([]string{"-o", "pid,ppid,uid,stat,time,tty,comm,args"})
	me := os.Getpid()
	top := psTable("/proc", []int{me, 1 << 30}, cols, time.Now())
	if len(top.Rows) != 1 {
		t.Fatalf("rows %q, want this process alone (the other pid does not exist)", top.Rows)
	}
	r := top.Rows[0]
	if r[0] != strconv.Itoa(me) || r[1] != strconv.Itoa(os.Getppid()) || r[2] != strconv.Itoa(os.Geteuid()) {
		t.Errorf("pid, ppid, uid: %q", r[:3])
	}
	if !slices.Contains([]string{"R", "S"}, r[3][:1]) || !strings.Contains(r[4], ":") || r[6] == "" || !strings.Contains(r[7], os.Args[0]) {
		t.Errorf("stat, time, comm, args: %q", r[3:])
	}
	for dev, want := range map[int]string{0: "?", 136<<8 | 3: "pts/3", 4<<8 | 65: "ttyS1"} {
		if got := ttyName(dev); got != want {
			t.Errorf("ttyName(%#x) = %q, want %q", dev, got, want)
		}
	}
}
