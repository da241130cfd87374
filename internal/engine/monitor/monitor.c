// The container monitor: what keeps a detached container supervised.
//
// It runs as an ELF constructor when _BERTH_MONITOR is set, before the Go
// runtime starts, and never returns into Go: a Go process costs about
// 1.3 MB of PSS at rest (its heap arenas, the runtime's structures and the
// packages' initialisers), this loop a few hundred KB, and one runs per
// container. Everything that needs the engine (creating the container,
// recording its exit, restart policies, removal) is done by short-lived
// children forked from here that continue into Go (berth_monitor_role says
// which); the monitor only holds the container's stdio, writes the log,
// reaps the container and reports.
//
// Started by the CLI with setsid, as the container's subreaper:
//   fd 3      the CLI's notify pipe (optional): "S <pid>", "E <message>",
//             "X <code>" lines
//   fd 4,5,6  the CLI's stdin, stdout, stderr when attached (flag 'a')
//   env _BERTH_MONITOR       flags: a attached, i keep stdin open, t tty,
//                            h run the exit handler even when attached
//   env _BERTH_MONITOR_LOG   the JSON-lines log file
//   env _BERTH_MONITOR_EXIT  the exit file: "<code> <unix nanos>\n"
//   env _BERTH_MONITOR_LOGMAX, _BERTH_MONITOR_LOGFILES  rotation
//   env _BERTH_MONITOR_LOGATTRS  a JSON object written as each line's "attrs"
//   env _BERTH_MONITOR_DETACH  the attached CLI's detach keys, in hex
//   env _BERTH_MONITOR_SOCKET  the attach socket to listen on
//
// Attach socket: a CLI that attaches later (berth attach) connects and
// sends "A <i|io|-> <hex detach keys|->\n" with its stdin (with i), stdout
// and stderr as SCM_RIGHTS (with o, the end of that stdin ends the
// container's, as the starting CLI's does: the CRI's StdinOnce); the monitor answers "S <pid>" (attached) or
// "E <message>", then uses the connection as that CLI's notify file: the
// same "X <code>" at the exit, and "Q" when the CLI typed its detach keys
// (it is then dropped, the container left running). Up to MAX_CLIENTS
// CLIs at once: output goes to each, input comes from each. A client
// with no terminal to copy the size from sends "W <rows> <cols>\n" (no
// files) instead: the pty gets that size, the answer is "S <pid>" or
// "E <message>", and the connection ends. A caller about to stop the
// container sends "H\n" (no files) to record the exit itself: answered
// "S <pid>", it gets "X <code>" at the exit, and no exit handler runs if
// that line reached it; a recorder that went before the exit leaves it
// to the handler. There is one recorder at a time, and none where the
// handler must run (flag h).
//
// Parked (_BERTH_MONITOR=P, started by a long-lived engine ahead of need):
// the monitor forks its start child at once, so that the child's Go
// runtime has started (~5 ms) before a container is given to it, and
// waits on fd 3, a SOCK_SEQPACKET socket of the engine's, for one message:
// the container's id (it replaces argv[1], which the engine padded, so
// that the command line names the container as an unparked monitor's
// does), then NUL-separated K=V entries set in the environment (the
// _BERTH_MONITOR variables above), with the monitor's log (its stderr
// from then on), optionally the notify pipe (fd 3 from then on), and, for
// an attached start (flag a), the caller's stdin, stdout and stderr (fds
// 4-6 from then on) as SCM_RIGHTS. It then goes on as a monitor started
// with those, and hands the waiting child the container's stdio and its
// environment ("G", below) instead of forking one. The end of the socket
// before a message ends the monitor and its child.
//
// A child gets the container's stdio on fds 0-2 and a report socket on fd
// 3 on which it sends "P <pid>" (the container runs; with a tty, the pty
// master rides along as SCM_RIGHTS), "E <message>" (it failed) or "D"
// (nothing more to supervise). Before "P", "R" messages carry the sockets
// that hold the container's published host ports: the monitor keeps them
// until the container exits, so no one else can take those ports (and a
// killed monitor frees them). A parked child first reads "G" on fd 3: eight
// hex digits, the length of the NUL-separated K=V environment that
// follows, with its stdio for fds 0-2 as SCM_RIGHTS.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

// Read by Go in a forked child: 1 start the container, 2 handle its exit,
// 3 a health probe, 4 the loopback proxy, 5 a parked start child.
int berth_monitor_role;
int berth_monitor_exit_code;
int berth_monitor_pid; // in a forked child: the monitor's pid
// In an exit handler: how many port-holding sockets it inherited, on fds
// 4, 5, ... (a restart reuses them, so the ports are never free between
// the exit and the restart).
int berth_monitor_held_ports;
// In the loopback proxy (role 4): the addresses to forward to, one per
// listening socket on fds 3, 4, ..., separated by spaces.
const char *berth_monitor_proxy_to;

// The caller's open-file limit, which the monitor raised for itself.
static struct rlimit caller_nofile;
static int nofile_raised;

// The sockets that hold the container's published ports.
static int *held_ports;
static int nheld_ports, capheld_ports;

#define PARTIAL_MAX 16384

struct stream {
	int fd;
	const char *name;
	int to_err; // copied to the clients' stderr, else their stdout
	char pending[PARTIAL_MAX];
	size_t npending;
};

static const char *log_path, *exit_path;
static int log_fd = -1;
static long long log_size, log_max = 20LL << 20;
static int log_files = 5;
static int notify_fd = -1;
// The attached CLIs: the one that started the monitor attached (flag
// 'a': its files on fds 4-6, its notify pipe notify_fd) and those that
// attached later through the attach socket (their connection is their
// notify file). Output goes to each, input comes from each.
#define MAX_CLIENTS 16
#define DETACH_MAX 32
struct client {
	int used;
	int orig; // the CLI that started the monitor
	pid_t pid; // a SIGWINCH from it resizes the pty from its terminal
	int in, out, err; // -1 once closed
	int notify; // a later CLI's connection (the original's is notify_fd)
	int once; // a later CLI whose stdin's end closes the container's ('o')
	// Its detach sequence (empty: none), and how much of it the input
	// matched so far (held back until it completes or breaks).
	unsigned char keys[DETACH_MAX];
	size_t nkeys, matched;
};
static struct client clients[MAX_CLIENTS];
// The original CLI is still attached: it records the exit (unless the
// 'h' flag), and the end of its stdin closes the container's (docker's
// StdinOnce). A CLI attached later does neither.
static int original_cli, stdin_once;
static const char *attach_path;
static struct stat attach_stat; // the socket file, to unlink only ours
static int attach_listen = -1;
static int keep_stdin;
static sigset_t old_mask;

static void fail(const char *what)
{
	dprintf(2, "berth monitor: %s: %s\n", what, strerror(errno));
	_exit(1);
}

static int write_all(int fd, const char *buf, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, buf, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += w;
		n -= (size_t)w;
	}
	return 0;
}

static void notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void notify(const char *fmt, ...)
{
	if (notify_fd < 0)
		return;
	char buf[4096];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof buf)
		n = sizeof buf - 1;
	if (write_all(notify_fd, buf, (size_t)n) < 0) {
		close(notify_fd);
		notify_fd = -1;
	}
}

// log_format is _BERTH_MONITOR_LOGFMT: LOG_JSON (docker's json-file, the
// default), LOG_CRI (the CRI's format, podman's k8s-file: what a kubelet
// reads) or LOG_NONE (output is read and dropped: no file).
enum { LOG_JSON, LOG_CRI, LOG_NONE };
static int log_format = LOG_JSON;

static void open_log(void)
{
	if (log_format == LOG_NONE)
		return;
	log_fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (log_fd < 0)
		fail("open log");
	struct stat st;
	log_size = fstat(log_fd, &st) == 0 ? st.st_size : 0;
}

// reopen_log starts a new file at the log's path (its old one was moved
// away by whoever rotates it); if that cannot be opened the old one is
// kept: losing the container's supervision over a log is never right.
static void reopen_log(void)
{
	if (log_fd < 0)
		return;
	int fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0)
		return;
	close(log_fd);
	log_fd = fd;
	struct stat st;
	log_size = fstat(log_fd, &st) == 0 ? st.st_size : 0;
}

static void rotate_log(void)
{
	if (log_files <= 1) {
		if (ftruncate(log_fd, 0) == 0)
			log_size = 0;
		return;
	}
	char from[4096], to[4096];
	for (int i = log_files - 1; i >= 1; i--) {
		if (i == 1)
			snprintf(from, sizeof from, "%s", log_path);
		else
			snprintf(from, sizeof from, "%s.%d", log_path, i - 1);
		snprintf(to, sizeof to, "%s.%d", log_path, i);
		rename(from, to);
	}
	close(log_fd);
	open_log();
}

// utf8_len returns the length of the valid UTF-8 sequence at p (of at
// most n bytes), or 0 if none starts there.
static size_t utf8_len(const unsigned char *p, size_t n)
{
	unsigned char c = p[0];
	size_t len;
	unsigned char lo = 0x80, hi = 0xbf;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		if (c == 0xe0)
			lo = 0xa0;
		if (c == 0xed)
			hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		if (c == 0xf0)
			lo = 0x90;
		if (c == 0xf4)
			hi = 0x8f;
	} else
		return 0;
	if (n < len || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return len;
}

// log_entry appends one docker json-file line: the JSON string escapes
// control characters, and bytes that are not UTF-8 become U+FFFD (as
// docker writes them), so every line is valid JSON for strict readers.
// log_attrs is the JSON object of docker's per-line "attrs" (--log-opt
// tag), from _BERTH_MONITOR_LOGATTRS; NULL for none.
#define ATTRS_MAX 4096
static const char *log_attrs;

static void log_write(const char *buf, size_t o)
{
	if (write_all(log_fd, buf, o) == 0)
		log_size += (long long)o;
	if (log_max > 0 && log_size >= log_max)
		rotate_log();
}

// log_entry_cri appends one line of the CRI's format: "TIME STREAM TAG
// CONTENT\n", TAG F for a line's end and P for a part of a longer line,
// CONTENT raw without its newline (what the kubelet and crictl parse).
static void log_entry_cri(const char *stream, const char *data, size_t n, const struct timespec *ts, const struct tm *tm)
{
	static char buf[PARTIAL_MAX + 128];
	int full = n > 0 && data[n - 1] == '\n';
	if (full)
		n--;
	size_t o = (size_t)snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ %s %c ",
				    tm->tm_year + 1900, tm->tm_mon + 1, tm->tm_mday, tm->tm_hour, tm->tm_min, tm->tm_sec,
				    ts->tv_nsec, stream, full ? 'F' : 'P');
	memcpy(buf + o, data, n);
	o += n;
	buf[o++] = '\n';
	log_write(buf, o);
}

static void log_entry(const char *stream, const char *data, size_t n)
{
	static char buf[PARTIAL_MAX * 6 + 256 + ATTRS_MAX];
	struct timespec ts;
	struct tm tm;
	if (log_format == LOG_NONE)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	if (log_format == LOG_CRI) {
		log_entry_cri(stream, data, n, &ts, &tm);
		return;
	}
	size_t o = 0;
	o += (size_t)snprintf(buf, sizeof buf, "{\"log\":\"");
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)data[i];
		switch (c) {
		case '"': buf[o++] = '\\'; buf[o++] = '"'; break;
		case '\\': buf[o++] = '\\'; buf[o++] = '\\'; break;
		case '\n': buf[o++] = '\\'; buf[o++] = 'n'; break;
		case '\r': buf[o++] = '\\'; buf[o++] = 'r'; break;
		case '\t': buf[o++] = '\\'; buf[o++] = 't'; break;
		default:
			if (c < 0x20 || c == 0x7f) {
				memcpy(buf + o, "\\u00", 4);
				o += 4;
				buf[o++] = hex[c >> 4];
				buf[o++] = hex[c & 15];
			} else if (c < 0x80) {
				buf[o++] = (char)c;
			} else {
				size_t l = utf8_len((const unsigned char *)data + i, n - i);
				if (l == 0) {
					memcpy(buf + o, "\\ufffd", 6);
					o += 6;
				} else {
					memcpy(buf + o, data + i, l);
					o += l;
					i += l - 1;
				}
			}
		}
	}
	o += (size_t)snprintf(buf + o, sizeof buf - o,
			      "\",\"stream\":\"%s\"%s%s,\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ\"}\n",
			      stream, log_attrs ? ",\"attrs\":" : "", log_attrs ? log_attrs : "", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
			      ts.tv_nsec);
	log_write(buf, o);
}

// log_data splits what a stream produced into lines; a line longer than
// PARTIAL_MAX is logged in pieces, as docker does.
static void log_data(struct stream *s, const char *data, size_t n)
{
	while (n > 0) {
		const char *nl = memchr(data, '\n', n);
		size_t take = nl ? (size_t)(nl - data) + 1 : n;
		size_t room = PARTIAL_MAX - s->npending;
		if (take > room)
			take = room;
		memcpy(s->pending + s->npending, data, take);
		s->npending += take;
		data += take;
		n -= take;
		if (s->pending[s->npending - 1] == '\n' || s->npending == PARTIAL_MAX) {
			log_entry(s->name, s->pending, s->npending);
			s->npending = 0;
		}
	}
}

static void flush_stream(struct stream *s)
{
	if (s->npending > 0) {
		log_entry(s->name, s->pending, s->npending);
		s->npending = 0;
	}
}

static void close_fd(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

// pump reads what is there: 1 after data, -1 when nothing is there now,
// 0 at EOF or error.
static int pump(struct stream *s)
{
	char buf[65536];
	ssize_t n = read(s->fd, buf, sizeof buf);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return -1;
	if (n <= 0)
		return 0;
	for (int i = 0; i < MAX_CLIENTS; i++) {
		int *to = s->to_err ? &clients[i].err : &clients[i].out;
		if (clients[i].used && *to >= 0 && write_all(*to, buf, (size_t)n) < 0)
			close_fd(to);
	}
	log_data(s, buf, (size_t)n);
	return 1;
}

static int pump_master(struct stream *s, int master)
{
	int fd = s->fd;
	s->fd = master;
	int r = pump(s);
	s->fd = fd;
	return r;
}

// drain reads a stream until nothing is left: the container is gone, so
// what it wrote is all in the pipe.
static void drain(struct stream *s)
{
	while (s->fd >= 0) {
		int r = pump(s);
		if (r == 0) {
			close(s->fd);
			s->fd = -1;
		}
		if (r != 1)
			break;
	}
}

static void write_exit_file(int code)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	char tmp[4096], buf[64];
	snprintf(tmp, sizeof tmp, "%s.tmp", exit_path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	int n = snprintf(buf, sizeof buf, "%d %lld\n", code, (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
	write_all(fd, buf, (size_t)n);
	close(fd);
	rename(tmp, exit_path);
}

// copy_winsize gives the pty the size of the terminal of the client
// whose pid is from (the sender of a SIGWINCH), or else of the first
// client that has a terminal.
static void copy_winsize(int master, pid_t from)
{
	struct winsize ws;
	if (master < 0)
		return;
	for (int pass = 0; pass < 2; pass++) {
		for (int i = 0; i < MAX_CLIENTS; i++) {
			struct client *c = &clients[i];
			if (!c->used || (pass == 0 && c->pid != from))
				continue;
			int src = c->in >= 0 ? c->in : c->out;
			if (src >= 0 && ioctl(src, TIOCGWINSZ, &ws) == 0) {
				ioctl(master, TIOCSWINSZ, &ws);
				return;
			}
		}
	}
}

// spawn forks a child that continues into Go with the container's stdio on
// 0-2, a report socket on 3 and, with pass_ports, the port-holding
// sockets on 4 and up. In the parent it returns the child's pid and sets
// *report.
static pid_t spawn(int role, int code, int stdin_r, int out_w, int err_w, int *report, int pass_ports)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		fail("socketpair");
	pid_t self = getpid();
	pid_t pid = fork();
	if (pid < 0)
		fail("fork");
	if (pid > 0) {
		close(sv[1]);
		*report = sv[0];
		return pid;
	}
	// The child: become an ordinary process again, then let Go start.
	prctl(PR_SET_CHILD_SUBREAPER, 0);
	prctl(PR_SET_NAME, role == 2 ? "berth-exit" : "berth-start");
	signal(SIGPIPE, SIG_DFL);
	if (dup2(stdin_r, 0) < 0 || dup2(out_w, 1) < 0 || dup2(err_w, 2) < 0 || dup2(sv[1], 3) < 0)
		_exit(120);
	int npass = pass_ports ? nheld_ports : 0;
	// Out of the way of 4..4+npass-1 first, then into place.
	for (int i = 0; i < npass; i++)
		if ((held_ports[i] = fcntl(held_ports[i], F_DUPFD, 4 + npass)) < 0)
			_exit(120);
	for (int i = 0; i < npass; i++)
		if (dup2(held_ports[i], 4 + i) < 0)
			_exit(120);
	// dup2 cleared FD_CLOEXEC on 0-3 (and the ports'); everything else
	// the monitor holds must not reach the container.
	syscall(SYS_close_range, (unsigned)(4 + npass), ~0U, 0U);
	berth_monitor_held_ports = npass;
	if (nofile_raised)
		setrlimit(RLIMIT_NOFILE, &caller_nofile);
	sigprocmask(SIG_SETMASK, &old_mask, NULL);
	berth_monitor_role = role;
	berth_monitor_exit_code = code;
	berth_monitor_pid = self;
	return 0;
}

// Healthchecks: every health_interval ms while the container runs, a
// child (role 3) runs one probe and records it; one at a time, the next
// interval counted from the end of the last probe (docker's rule). With
// a start interval, probes come every health_start_interval ms instead
// while the container is starting (the probe exits PROBE_STARTING) within
// its start period, as docker 25's do. A probe process still alive 5 s
// past its timeout is killed (the probe kills its own exec at the
// timeout; this catches a probe process that hangs itself).
#define PROBE_STARTING 3 // monitor.ProbeStillStarting
static long long now_ms(void);
static long long health_interval, health_timeout;
static long long health_start_interval, health_start_period, run_started;
static pid_t probe;
static long long next_probe, probe_deadline; // CLOCK_MONOTONIC ms

// probe_interval is the wait before the next probe: the start interval
// while the container is (still) starting within its start period.
static long long probe_interval(int starting)
{
	if (health_start_interval > 0 && starting && now_ms() - run_started < health_start_period)
		return health_start_interval;
	return health_interval;
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

// spawn_probe forks a health probe child: /dev/null for stdin and stdout,
// the monitor's stderr (its log) kept, nothing else.
static pid_t spawn_probe(void)
{
	pid_t pid = fork();
	if (pid != 0)
		return pid; // the monitor (or -1: try at the next interval)
	prctl(PR_SET_CHILD_SUBREAPER, 0);
	prctl(PR_SET_NAME, "berth-health");
	// Gone with the monitor; and a process group of its own, which its
	// exec (and whatever that starts) joins, so that one kill ends them
	// all.
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	setpgid(0, 0);
	signal(SIGPIPE, SIG_DFL);
	int devnull = open("/dev/null", O_RDWR);
	if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(devnull, 1) < 0 || dup2(devnull, 3) < 0)
		_exit(120);
	syscall(SYS_close_range, 4U, ~0U, 0U);
	sigprocmask(SIG_SETMASK, &old_mask, NULL);
	if (nofile_raised)
		setrlimit(RLIMIT_NOFILE, &caller_nofile);
	berth_monitor_role = 3;
	return 0;
}

static int env_int(const char *name, long long *out)
{
	const char *v = getenv(name);
	if (!v || !*v)
		return 0;
	*out = strtoll(v, NULL, 10);
	return 1;
}

#define MAX_PASSED 253 // the kernel's SCM_MAX_FD

// recv_report reads one message and the fds that ride along (the kernel
// never joins a message that carries fds to the next one).
static ssize_t recv_report(int fd, char *buf, size_t size, int *passed, int *npassed)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * MAX_PASSED)];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = buf, .iov_len = size - 1 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf };
	*npassed = 0;
	ssize_t n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
	if (n <= 0)
		return n;
	buf[n] = 0;
	if (msg.msg_flags & MSG_CTRUNC)
		// Over the open-file limit (raised to the hard one at start):
		// the kernel dropped fds; the ports they held are not held.
		fprintf(stderr, "berth-monitor: fds passed by the start process were dropped (open-file limit); some published ports are not held\n");
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		if (k > MAX_PASSED - *npassed)
			k = MAX_PASSED - *npassed;
		memcpy(passed + *npassed, CMSG_DATA(c), sizeof(int) * (size_t)k);
		*npassed += k;
	}
	return n;
}


static void hold_ports(const int *fds, int n)
{
	if (nheld_ports + n > capheld_ports) {
		int cap = capheld_ports ? capheld_ports * 2 : 16;
		while (cap < nheld_ports + n)
			cap *= 2;
		int *p = realloc(held_ports, sizeof(int) * (size_t)cap);
		if (!p) {
			// Out of memory: the ports are free again. The container
			// still runs; its ports are merely not held.
			for (int i = 0; i < n; i++)
				close(fds[i]);
			return;
		}
		held_ports = p;
		capheld_ports = cap;
	}
	memcpy(held_ports + nheld_ports, fds, sizeof(int) * (size_t)n);
	nheld_ports += n;
}

// The loopback proxy: a child (role 4) that accepts, on the sockets
// holding the [::] and [::1] TCP ports, the connections from ::1 (which
// the kernel cannot DNAT to a container) and forwards them to the
// container's IPv6 address. It lives while the ports are held (a new run
// sends new addresses, and gets a new proxy); PDEATHSIG ends it with the
// monitor.
#define PROXY_MAX 120
static int proxy_fds[PROXY_MAX];
static int nproxy_fds;
static char proxy_to[4096];
static pid_t proxy;

static void stop_proxy(void)
{
	if (proxy > 0)
		kill(proxy, SIGKILL); // reaped by the loop
	proxy = 0;
	for (int i = 0; i < nproxy_fds; i++)
		close(proxy_fds[i]);
	nproxy_fds = 0;
}

static pid_t spawn_proxy(void)
{
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	prctl(PR_SET_CHILD_SUBREAPER, 0);
	prctl(PR_SET_NAME, "berth-proxy");
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	setpgid(0, 0);
	signal(SIGPIPE, SIG_DFL);
	int n = nproxy_fds;
	int devnull = open("/dev/null", O_RDWR);
	if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(devnull, 1) < 0)
		_exit(120);
	for (int i = 0; i < n; i++)
		if ((proxy_fds[i] = fcntl(proxy_fds[i], F_DUPFD, 3 + n)) < 0)
			_exit(120);
	for (int i = 0; i < n; i++)
		if (dup2(proxy_fds[i], 3 + i) < 0)
			_exit(120);
	syscall(SYS_close_range, (unsigned)(3 + n), ~0U, 0U);
	sigprocmask(SIG_SETMASK, &old_mask, NULL);
	if (nofile_raised)
		setrlimit(RLIMIT_NOFILE, &caller_nofile);
	berth_monitor_held_ports = n;
	berth_monitor_proxy_to = proxy_to;
	berth_monitor_role = 4;
	return 0;
}

static void release_ports(void)
{
	for (int i = 0; i < nheld_ports; i++)
		close(held_ports[i]);
	nheld_ports = 0;
	stop_proxy();
}

static pid_t container;
static int attached, handler_always;
// The caller that records this run's exit itself (an "H" request on the
// attach socket: a stop), or -1. It gets "X <code>" at the exit, and
// while it is there to get it no exit handler runs; one that went
// before leaves the exit to the handler.
static int recorder_fd = -1;
static int master = -1, stdin_w = -1;
// The container's input: its stdin pipe (or, with a tty, the pty master),
// written without blocking, from a buffer of what the attached stdin gave:
// a container that stops reading must not stop the monitor.
static char inbuf[65536];
static size_t inlen, inoff;
static int in_eof; // the attached stdin ended; close stdin_w once inbuf is out

static void close_stdin_w(void)
{
	if (stdin_w >= 0) {
		close(stdin_w);
		stdin_w = -1;
	}
}

static void flush_input(void)
{
	int to = master >= 0 ? master : stdin_w;
	while (inlen > 0 && to >= 0) {
		ssize_t w = write(to, inbuf + inoff, inlen);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			return;
		if (w <= 0) {
			// Nobody reads any more: drop it.
			inlen = 0;
			if (to == stdin_w)
				close_stdin_w();
			break;
		}
		inoff += (size_t)w;
		inlen -= (size_t)w;
	}
	if (inlen == 0 && in_eof && master < 0)
		close_stdin_w();
}

// drop_client drops an attached CLI's files: it is gone, detached, or it
// has its exit code and a restart policy keeps the container going
// without it.
static void drop_client(struct client *c)
{
	close_fd(&c->in);
	close_fd(&c->out);
	close_fd(&c->err);
	if (c->orig) {
		close_fd(&notify_fd);
		original_cli = stdin_once = 0;
	} else {
		close_fd(&c->notify);
	}
	memset(c, 0, sizeof *c);
	c->in = c->out = c->err = c->notify = -1;
}

// drop_original: the CLI that started the monitor is gone (its notify
// pipe closed).
static void drop_original(void)
{
	for (int i = 0; i < MAX_CLIENTS; i++)
		if (clients[i].used && clients[i].orig)
			drop_client(&clients[i]);
	close_fd(&notify_fd);
}

// tell writes a line to a client's notify file; a client that cannot be
// told is dropped.
static void tell(struct client *c, const char *line)
{
	if (c->orig) {
		notify("%s", line);
		return;
	}
	if (c->notify < 0 || write_all(c->notify, line, strlen(line)) < 0)
		drop_client(c);
}

static size_t parse_hex(const char *hex, unsigned char *out, size_t max)
{
	size_t n = 0;
	while (hex && hex[0] && hex[1] && n < max) {
		char b[3] = { hex[0], hex[1], 0 };
		char *end;
		long v = strtol(b, &end, 16);
		if (*end)
			return 0;
		out[n++] = (unsigned char)v;
		hex += 2;
	}
	return n;
}

// filter_input copies what the attached CLI typed to out, holding back a
// prefix of the detach sequence until it either completes (1 is returned;
// what came before it is in out, what came after is dropped) or breaks
// (the held bytes go out, as typed). out has room for n + DETACH_MAX.
static int filter_input(struct client *cl, const char *in, size_t n, char *out, size_t *nout)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)in[i];
		if (cl->nkeys == 0) {
			out[o++] = (char)c;
			continue;
		}
		if (c == cl->keys[cl->matched]) {
			if (++cl->matched == cl->nkeys) {
				cl->matched = 0;
				*nout = o;
				return 1;
			}
			continue;
		}
		if (cl->matched > 0) {
			memcpy(out + o, cl->keys, cl->matched);
			o += cl->matched;
			cl->matched = 0;
			// The byte that broke the match may begin a new one.
			if (c == cl->keys[0]) {
				if (++cl->matched == cl->nkeys) {
					cl->matched = 0;
					*nout = o;
					return 1;
				}
				continue;
			}
		}
		out[o++] = (char)c;
	}
	*nout = o;
	return 0;
}

// listen_attach makes the attach socket. Its path may be longer than a
// sockaddr_un holds: it is bound through /proc/self/fd/<its directory>.
static void listen_attach(const char *path)
{
	const char *slash = strrchr(path, '/');
	if (!slash || !slash[1])
		return;
	char dir[4096];
	size_t dl = (size_t)(slash - path);
	if (dl == 0 || dl >= sizeof dir)
		return;
	memcpy(dir, path, dl);
	dir[dl] = 0;
	int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return;
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int n = snprintf(a.sun_path, sizeof a.sun_path, "/proc/self/fd/%d/%s", dfd, slash + 1);
	int fd = -1;
	if (n > 0 && (size_t)n < sizeof a.sun_path) {
		unlinkat(dfd, slash + 1, 0);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd >= 0 && (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 8) < 0)) {
			fprintf(stderr, "berth-monitor: attach socket %s: %s\n", path, strerror(errno));
			close(fd);
			fd = -1;
		}
	}
	close(dfd);
	if (fd >= 0) {
		attach_listen = fd;
		if (stat(path, &attach_stat) == 0)
			attach_path = path;
	}
}

static void accept_attach(void)
{
	int c = accept4(attach_listen, NULL, NULL, SOCK_CLOEXEC);
	if (c < 0)
		return;
	// A client that connects and says nothing must not stop the loop.
	struct timeval tv = { .tv_sec = 2 };
	setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	char buf[256];
	int passed[MAX_PASSED], npassed = 0;
	ssize_t n = recv_report(c, buf, sizeof buf, passed, &npassed);
	const char *why = NULL;
	struct ucred cred;
	socklen_t credlen = sizeof cred;
	char flags[8] = "", keys[2 * DETACH_MAX + 2] = "";
	unsigned rows, cols;
	if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &credlen) < 0 || (cred.uid != 0 && cred.uid != geteuid()))
		why = "permission denied";
	else if (n > 0 && buf[0] == 'W' && npassed == 0) {
		// A resize from a client with no terminal of its own to copy
		// the size from (the Docker API's): answered, then closed.
		struct winsize ws = { 0 };
		if (sscanf(buf, "W %u %u", &rows, &cols) != 2 || rows > 65535 || cols > 65535)
			why = "bad resize request";
		else if (!container)
			why = "the container is not running";
		else if (master < 0)
			why = "the container has no terminal";
		else {
			ws.ws_row = (unsigned short)rows;
			ws.ws_col = (unsigned short)cols;
			if (ioctl(master, TIOCSWINSZ, &ws) < 0)
				why = strerror(errno);
		}
		if (!why) {
			dprintf(c, "S %d\n", container);
			close(c);
			return;
		}
	} else if (n > 0 && buf[0] == 'H' && npassed == 0) {
		// "H": the caller (a stop) records the coming exit itself.
		if (!container)
			why = "the container is not running";
		else if (handler_always)
			why = "the exit handler records this container's exits (a restart policy or a watching caller)";
		else if (recorder_fd >= 0)
			why = "another caller records this container's exit";
		if (!why) {
			recorder_fd = c;
			dprintf(c, "S %d\n", container);
			return;
		}
	} else if (n <= 0 || buf[0] != 'A' || sscanf(buf, "A %7s %65s", flags, keys) != 2)
		why = "bad attach request";
	else if (npassed != (strchr(flags, 'i') ? 3 : 2))
		why = "bad attach request: wrong number of files";
	else if (!container)
		why = "the container is not running";
	struct client *cl = NULL;
	for (int i = 0; i < MAX_CLIENTS && !why && !cl; i++)
		if (!clients[i].used)
			cl = &clients[i];
	if (!why && !cl)
		why = "too many clients are attached to this container";
	if (why) {
		dprintf(c, "E %s\n", why);
		for (int i = 0; i < npassed; i++)
			close(passed[i]);
		close(c);
		return;
	}
	int k = 0;
	cl->used = 1;
	cl->pid = cred.pid;
	cl->in = -1;
	if (strchr(flags, 'i')) {
		int in = passed[k++];
		if (keep_stdin && (stdin_w >= 0 || master >= 0))
			cl->in = in;
		else
			close(in);
	}
	cl->once = cl->in >= 0 && strchr(flags, 'o') != NULL;
	cl->out = passed[k++];
	cl->err = passed[k++];
	cl->notify = c;
	cl->nkeys = strcmp(keys, "-") == 0 ? 0 : parse_hex(keys, cl->keys, DETACH_MAX);
	copy_winsize(master, cl->pid);
	char line[32];
	snprintf(line, sizeof line, "S %d\n", container);
	tell(cl, line);
}


static int in_pipe[2], out_pipe[2], err_pipe[2];
static struct stream out = { .fd = -1, .name = "stdout" }, err = { .fd = -1, .name = "stderr", .to_err = 1 };

// drain_master reads what the pty still holds after the container exited
// (until EIO, or nothing comes for 50 ms).
static void drain_master(void)
{
	while (master >= 0) {
		struct pollfd pf = { .fd = master, .events = POLLIN };
		if (poll(&pf, 1, 50) <= 0)
			break;
		if (pump_master(&out, master) == 0) {
			close(master);
			master = -1;
		}
	}
}

// container_exited records the exit and forks the exit handler when one is
// due. It returns 0 in that child (which continues into Go).
static int container_exited(int st, int *code, pid_t *child, int *report, int *done)
{
	*code = WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
	container = 0;
	drain(&out);
	drain(&err);
	drain_master();
	inlen = 0;
	flush_stream(&out);
	flush_stream(&err);
	write_exit_file(*code);
	char line[32];
	snprintf(line, sizeof line, "X %d\n", *code);
	notify("%s", line);
	// The CLI that started the monitor records the exit if it is still
	// there and got the code, and so does a recorder (a stop) that got
	// it; CLIs attached later leave it to the handler.
	int cli_records = original_cli && notify_fd >= 0;
	if (recorder_fd >= 0) {
		if (write_all(recorder_fd, line, strlen(line)) == 0)
			cli_records = 1;
		close_fd(&recorder_fd);
	}
	for (int i = 0; i < MAX_CLIENTS; i++) {
		if (clients[i].used && !clients[i].orig)
			tell(&clients[i], line);
		if (clients[i].used)
			drop_client(&clients[i]);
	}
	close_fd(&notify_fd);
	if (log_fd >= 0)
		fsync(log_fd);
	if (handler_always || !cli_records) {
		if (*report >= 0) {
			close(*report);
			*report = -1;
		}
		// The handler gets the ports: a restart reuses them (they are
		// never free for someone else to take); the monitor lets go of
		// them when the handler reports the new set or is done.
		*child = spawn(2, *code, in_pipe[0], out_pipe[1], err_pipe[1], report, 1);
		if (*child == 0)
			return 0;
	} else {
		release_ports();
		*done = 1;
	}
	return 1;
}

// The parked start child (run_parked), until run_monitor hands it the
// container.
static pid_t parked_child;
static int parked_report = -1;
static sigset_t monitor_mask; // the signals the monitor takes by signalfd

// setup_process makes this process the monitor: the open-file limit
// raised, the container's subreaper, named, its signals blocked for the
// signalfd (old_mask keeps what children get back). Once.
static void setup_process(void)
{
	static int done;
	if (done)
		return;
	done = 1;
	// A container may publish thousands of ports, each held by a socket
	// here: the soft open-file limit of the caller's shell is not enough.
	// (Children get the caller's limit back: see spawn.)
	struct rlimit nofile;
	if (getrlimit(RLIMIT_NOFILE, &caller_nofile) == 0 && caller_nofile.rlim_cur < caller_nofile.rlim_max) {
		nofile = caller_nofile;
		nofile.rlim_cur = nofile.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &nofile) == 0)
			nofile_raised = 1;
	}
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	prctl(PR_SET_NAME, "berth-monitor");
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&monitor_mask);
	sigaddset(&monitor_mask, SIGCHLD);
	sigaddset(&monitor_mask, SIGWINCH);
	sigaddset(&monitor_mask, SIGTERM);
	sigaddset(&monitor_mask, SIGINT);
	sigaddset(&monitor_mask, SIGHUP);
	sigaddset(&monitor_mask, SIGQUIT);
	sigaddset(&monitor_mask, SIGUSR1);
	sigprocmask(SIG_BLOCK, &monitor_mask, &old_mask);
}

// hand_over gives the parked child the container: "G", the length of the
// environment in hex, the environment (NUL-separated K=V), with its stdio
// as SCM_RIGHTS. 0 on success.
static int hand_over(int report, int stdin_r, int out_w, int err_w)
{
	extern char **environ;
	static char buf[65536];
	size_t n = 9;
	for (char **e = environ; *e; e++) {
		size_t len = strlen(*e) + 1;
		if (len > sizeof(buf) - n)
			return -1;
		memcpy(buf + n, *e, len);
		n += len;
	}
	char head[10];
	snprintf(head, sizeof(head), "G%08zx", n - 9);
	memcpy(buf, head, 9);
	int fds[3] = { stdin_r, out_w, err_w };
	union {
		char buf[CMSG_SPACE(sizeof(fds))];
		struct cmsghdr align;
	} ctl;
	memset(&ctl, 0, sizeof(ctl));
	struct iovec iov = { .iov_base = buf, .iov_len = n };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf };
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(fds));
	memcpy(CMSG_DATA(c), fds, sizeof(fds));
	ssize_t w = sendmsg(report, &msg, MSG_NOSIGNAL);
	if (w < 0)
		return -1;
	if ((size_t)w < n && write_all(report, buf + w, n - (size_t)w) < 0)
		return -1;
	return 0;
}

static void run_monitor(const char *flags)
{
	attached = strchr(flags, 'a') != NULL;
	keep_stdin = strchr(flags, 'i') != NULL;
	for (int i = 0; i < MAX_CLIENTS; i++)
		clients[i].in = clients[i].out = clients[i].err = clients[i].notify = -1;
	int tty = strchr(flags, 't') != NULL;
	handler_always = strchr(flags, 'h') != NULL;
	log_path = getenv("_BERTH_MONITOR_LOG");
	exit_path = getenv("_BERTH_MONITOR_EXIT");
	if (!log_path || !exit_path) {
		errno = EINVAL;
		fail("_BERTH_MONITOR_LOG and _BERTH_MONITOR_EXIT must be set");
	}
	long long v;
	if (env_int("_BERTH_MONITOR_LOGMAX", &v))
		log_max = v;
	if (env_int("_BERTH_MONITOR_LOGFILES", &v))
		log_files = (int)v;
	log_attrs = getenv("_BERTH_MONITOR_LOGATTRS");
	if (log_attrs && (!*log_attrs || strlen(log_attrs) > ATTRS_MAX))
		log_attrs = NULL; // the engine never sends one this long
	const char *fmt = getenv("_BERTH_MONITOR_LOGFMT");
	if (fmt && strcmp(fmt, "cri") == 0)
		log_format = LOG_CRI;
	else if (fmt && strcmp(fmt, "none") == 0)
		log_format = LOG_NONE;

	const char *health = getenv("_BERTH_MONITOR_HEALTH");
	if (health && *health) {
		char *end;
		health_interval = strtoll(health, &end, 10);
		if (*end == ',')
			health_timeout = strtoll(end + 1, &end, 10);
		if (*end == ',')
			health_start_interval = strtoll(end + 1, &end, 10);
		if (*end == ',')
			health_start_period = strtoll(end + 1, &end, 10);
		if (health_interval <= 0)
			health_interval = 0;
		if (health_start_interval <= 0 || health_start_period <= 0)
			health_start_interval = 0;
	}

	if (fcntl(3, F_GETFD) >= 0) {
		notify_fd = 3;
		fcntl(3, F_SETFD, FD_CLOEXEC);
	}
	if (attached) {
		struct client *c = &clients[0];
		c->used = c->orig = 1;
		c->pid = getppid();
		c->in = keep_stdin ? 4 : -1;
		c->out = 5;
		c->err = 6;
		if (!keep_stdin)
			close(4);
		original_cli = 1;
		stdin_once = keep_stdin;
		c->nkeys = parse_hex(getenv("_BERTH_MONITOR_DETACH"), c->keys, DETACH_MAX);
	}
	// Whatever else the caller left open without close-on-exec (a shell's
	// redirection, a pipe) would stay open for the container's life. (A
	// parked monitor's report socket stays: its child waits on it.)
	unsigned first = attached ? 7U : 4U;
	if (parked_report >= (int)first) {
		if ((unsigned)parked_report > first)
			syscall(SYS_close_range, first, (unsigned)parked_report - 1, 0U);
		syscall(SYS_close_range, (unsigned)parked_report + 1, ~0U, 0U);
	} else {
		syscall(SYS_close_range, first, ~0U, 0U);
	}
	setup_process();
	int sfd = signalfd(-1, &monitor_mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0)
		fail("signalfd");
	open_log();
	const char *sock = getenv("_BERTH_MONITOR_SOCKET");
	if (sock && *sock)
		listen_attach(sock);

	// The container's stdio: pipes the monitor reads, or /dev/null (the
	// pty carries everything with a tty).
	int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	in_pipe[0] = devnull;
	in_pipe[1] = -1;
	out_pipe[0] = err_pipe[0] = -1;
	out_pipe[1] = err_pipe[1] = devnull;
	if (keep_stdin && !tty && pipe2(in_pipe, O_CLOEXEC) < 0)
		fail("pipe");
	if (!tty && (pipe2(out_pipe, O_CLOEXEC | O_NONBLOCK) < 0 || pipe2(err_pipe, O_CLOEXEC | O_NONBLOCK) < 0))
		fail("pipe");
	if (!tty) {
		// Keep the write ends non-blocking only on our side: the
		// container gets blocking pipes.
		fcntl(out_pipe[1], F_SETFL, 0);
		fcntl(err_pipe[1], F_SETFL, 0);
	}
	out.fd = out_pipe[0];
	err.fd = err_pipe[0];
	stdin_w = in_pipe[1];
	if (stdin_w >= 0)
		fcntl(stdin_w, F_SETFL, O_NONBLOCK);

	int report = -1;
	pid_t child = 0;
	if (parked_child > 0) {
		if (hand_over(parked_report, in_pipe[0], out_pipe[1], err_pipe[1]) == 0) {
			child = parked_child;
			report = parked_report;
		} else {
			// It died while parked, or cannot take its files: a
			// child of our own instead.
			kill(parked_child, SIGKILL);
			waitpid(parked_child, NULL, 0);
			close(parked_report);
		}
		parked_child = 0;
		parked_report = -1;
	}
	if (child == 0)
		child = spawn(1, 0, in_pipe[0], out_pipe[1], err_pipe[1], &report, 0);
	if (child == 0)
		return;
	int done = 0; // a child said there is nothing more to supervise
	int ports_from_child = 0; // an "R" came since the last "P"
	int code = 0;
	pid_t early_pid = 0;
	int early_status = 0;

	for (;;) {
		struct pollfd p[9 + 2 * MAX_CLIENTS];
		int np = 0;
		p[np++] = (struct pollfd){ .fd = sfd, .events = POLLIN };
		int i_report = -1, i_out = -1, i_err = -1, i_master = -1, i_notify = -1;
		if (notify_fd >= 0) {
			// Only POLLERR matters: the CLI closed its end.
			i_notify = np;
			p[np++] = (struct pollfd){ .fd = notify_fd, .events = 0 };
		}
		if (report >= 0) {
			i_report = np;
			p[np++] = (struct pollfd){ .fd = report, .events = POLLIN };
		}
		if (out.fd >= 0) {
			i_out = np;
			p[np++] = (struct pollfd){ .fd = out.fd, .events = POLLIN };
		}
		if (err.fd >= 0) {
			i_err = np;
			p[np++] = (struct pollfd){ .fd = err.fd, .events = POLLIN };
		}
		if (master >= 0) {
			i_master = np;
			p[np++] = (struct pollfd){ .fd = master, .events = POLLIN | (inlen > 0 ? POLLOUT : 0) };
		}
		int i_recorder = -1;
		if (recorder_fd >= 0) {
			// Only POLLERR/POLLHUP matter: the recorder went.
			i_recorder = np;
			p[np++] = (struct pollfd){ .fd = recorder_fd, .events = 0 };
		}
		int i_listen = -1;
		if (attach_listen >= 0) {
			i_listen = np;
			p[np++] = (struct pollfd){ .fd = attach_listen, .events = POLLIN };
		}
		int i_stdin = -1;
		if (inlen > 0 && master < 0 && stdin_w >= 0) {
			i_stdin = np;
			p[np++] = (struct pollfd){ .fd = stdin_w, .events = POLLOUT };
		}
		int i_cin[MAX_CLIENTS], i_cnotify[MAX_CLIENTS];
		for (int i = 0; i < MAX_CLIENTS; i++) {
			struct client *c = &clients[i];
			i_cin[i] = i_cnotify[i] = -1;
			if (!c->used)
				continue;
			if (!c->orig && c->notify >= 0) {
				// Only POLLERR/POLLHUP matter: the CLI went.
				i_cnotify[i] = np;
				p[np++] = (struct pollfd){ .fd = c->notify, .events = 0 };
			}
			if (c->in >= 0 && inlen == 0 && (stdin_w >= 0 || master >= 0)) {
				i_cin[i] = np;
				p[np++] = (struct pollfd){ .fd = c->in, .events = POLLIN };
			}
		}
		int timeout = -1;
		if (health_interval > 0) {
			long long now = now_ms(), until = -1;
			if (probe > 0)
				until = probe_deadline - now;
			else if (container > 0)
				until = next_probe - now;
			if (until >= 0 || probe > 0 || container > 0)
				timeout = until < 0 ? 0 : (until > 60000 ? 60000 : (int)until);
		}
		int ready = poll(p, (nfds_t)np, timeout);
		if (ready < 0) {
			if (errno == EINTR)
				continue;
			fail("poll");
		}
		if (health_interval > 0) {
			long long now = now_ms();
			if (probe > 0 && now >= probe_deadline) {
				kill(-probe, SIGKILL);
				probe_deadline = now + 60000; // reaped below; no second kill
			} else if (probe == 0 && container > 0 && now >= next_probe) {
				pid_t pid = spawn_probe();
				if (pid == 0)
					return; // the child, into Go
				if (pid > 0) {
					probe = pid;
					probe_deadline = now + health_timeout + 5000;
				} else {
					next_probe = now + health_interval;
				}
			}
		}
		if (i_out >= 0 && p[i_out].revents && pump(&out) == 0) {
			close(out.fd);
			out.fd = -1;
		}
		if (i_err >= 0 && p[i_err].revents && pump(&err) == 0) {
			close(err.fd);
			err.fd = -1;
		}
		if (i_notify >= 0 && (p[i_notify].revents & (POLLERR | POLLHUP)))
			drop_original();
		if (i_recorder >= 0 && (p[i_recorder].revents & (POLLERR | POLLHUP)))
			close_fd(&recorder_fd);
		for (int i = 0; i < MAX_CLIENTS; i++)
			if (i_cnotify[i] >= 0 && (p[i_cnotify[i]].revents & (POLLERR | POLLHUP)) && clients[i].used)
				drop_client(&clients[i]);
		if (i_master >= 0 && (p[i_master].revents & POLLOUT))
			flush_input();
		if (i_master >= 0 && (p[i_master].revents & ~POLLOUT) && pump_master(&out, master) == 0) {
			close(master);
			master = -1;
		}
		if (i_stdin >= 0 && p[i_stdin].revents)
			flush_input();
		for (int i = 0; i < MAX_CLIENTS; i++) {
			struct client *c = &clients[i];
			// One read into the (empty) input buffer per round; the
			// others' input waits in their files.
			if (i_cin[i] < 0 || !p[i_cin[i]].revents || !c->used || c->in < 0 || inlen > 0)
				continue;
			static char raw[sizeof inbuf - DETACH_MAX];
			ssize_t n = read(c->in, raw, sizeof raw);
			if (n > 0) {
				int detach = filter_input(c, raw, (size_t)n, inbuf, &inlen);
				inoff = 0;
				flush_input();
				if (detach) {
					// The CLI's detach keys: it goes, the container
					// stays (and its exit goes to the handler).
					tell(c, "Q\n");
					drop_client(c);
				}
			} else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
				// This stdin ended. That of the CLI that started the
				// container, or of one attached with 'o', ends the
				// container's too (docker closes it, and the CRI's
				// StdinOnce; with a tty the pty stays).
				close_fd(&c->in);
				if ((c->orig && stdin_once) || c->once) {
					in_eof = 1;
					flush_input();
				}
			}
		}
		if (i_listen >= 0 && p[i_listen].revents)
			accept_attach();
		if (i_report >= 0 && p[i_report].revents) {
			char buf[4096];
			int passed[MAX_PASSED], npassed = 0;
			ssize_t n = recv_report(report, buf, sizeof buf, passed, &npassed);
			if (n <= 0) {
				close(report);
				report = -1;
			} else if (buf[0] == 'R') {
				// The first "R" of a run replaces what the last run
				// held (the exit handler passes the same sockets on).
				if (!ports_from_child)
					release_ports();
				ports_from_child = 1;
				hold_ports(passed, npassed);
				npassed = 0;
			} else if (buf[0] == 'X' && npassed > 0) {
				stop_proxy();
				nproxy_fds = npassed < PROXY_MAX ? npassed : PROXY_MAX;
				memcpy(proxy_fds, passed, sizeof(int) * (size_t)nproxy_fds);
				for (int i = 0; i < nproxy_fds; i++)
					passed[i] = -1;
				size_t l = strcspn(buf + 2, "\n");
				if (l >= sizeof proxy_to)
					l = sizeof proxy_to - 1;
				memcpy(proxy_to, buf + 2, l);
				proxy_to[l] = 0;
				pid_t pid = spawn_proxy();
				if (pid == 0)
					return; // the child, into Go
				if (pid > 0)
					proxy = pid;
			} else if (buf[0] == 'P') {
				if (!ports_from_child)
					release_ports(); // this run publishes none
				ports_from_child = 0;
				container = (pid_t)atoi(buf + 2);
				run_started = now_ms();
				next_probe = run_started + probe_interval(1);
				if (npassed > 0) {
					if (master >= 0)
						close(master);
					master = passed[0];
					fcntl(master, F_SETFL, O_NONBLOCK);
					copy_winsize(master, -1);
					passed[0] = -1;
				}
				notify("S %d\n", container);
			} else if (buf[0] == 'E') {
				notify("%s", buf);
				done = 1;
			} else if (buf[0] == 'D') {
				done = 1;
			}
			for (int i = 0; i < npassed; i++)
				if (passed[i] >= 0)
					close(passed[i]);
		}
		if (p[0].revents) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof si) == sizeof si) {
				if (si.ssi_signo == SIGWINCH)
					copy_winsize(master, (pid_t)si.ssi_pid);
				// SIGUSR1: the log was renamed (the kubelet's rotation,
				// ReopenContainerLog): write to a new file at its path.
				if (si.ssi_signo == SIGUSR1)
					reopen_log();
			}
			int st;
			pid_t w;
			while ((w = waitpid(-1, &st, WNOHANG)) > 0) {
				if (w == probe) {
					probe = 0;
					next_probe = now_ms() + probe_interval(WIFEXITED(st) && WEXITSTATUS(st) == PROBE_STARTING);
					continue;
				}
				if (w == proxy) {
					// Killed from outside: [::1] waits for the next
					// run of the container.
					proxy = 0;
					continue;
				}
				if (w == child) {
					child = 0;
					// A child that died without a word (killed,
					// crashed) leaves nothing to supervise unless the
					// container runs.
					if (!container)
						done = 1;
				} else if (w == container) {
					if (container_exited(st, &code, &child, &report, &done) == 0)
						return;
				} else {
					// Not known yet: the container of a child whose
					// report is still unread.
					early_pid = w;
					early_status = st;
				}
			}
		}
		if (early_pid && early_pid == container) {
			early_pid = 0;
			if (container_exited(early_status, &code, &child, &report, &done) == 0)
				return;
		}
		// A dead child's report socket reads EOF on the next round.
		if (done && !child && !container && report < 0) {
			// A probe of a container that is gone has nothing to check.
			if (probe > 0)
				kill(-probe, SIGKILL);
			// The socket goes with the monitor, unless a new monitor
			// (a start right after this exit) made its own already.
			struct stat st;
			if (attach_path && stat(attach_path, &st) == 0 && st.st_ino == attach_stat.st_ino && st.st_dev == attach_stat.st_dev)
				unlink(attach_path);
			_exit(0);
		}
	}
}

// run_parked is a parked monitor (see the top of this file) until its
// container comes, then run_monitor's.
static void run_parked(char *title, size_t title_cap)
{
	if (fcntl(3, F_SETFD, FD_CLOEXEC) < 0)
		fail("parked monitor: no control socket on fd 3");
	setup_process();
	int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (devnull < 0)
		fail("open /dev/null");
	int report = -1;
	pid_t child = spawn(5, 0, devnull, devnull, devnull, &report, 0);
	if (child == 0)
		return; // parked in monitor.AwaitAssignment: the end of fd 3 ends it

	close(devnull);
	static char msg[65536];
	static int passed[MAX_PASSED];
	int npassed = 0;
	ssize_t n;
	do
		n = recv_report(3, msg, sizeof(msg), passed, &npassed);
	while (n < 0 && errno == EINTR);
	const char *id = msg;
	size_t idlen = n > 0 ? strlen(id) : 0;
	// (A message that filled the buffer may have been cut: the engine
	// sends at most 60 KiB.)
	if (n <= 0 || (size_t)n >= sizeof(msg) - 1 || npassed < 1 || (npassed > 2 && npassed != 5) || idlen == 0 || idlen > title_cap) {
		// The engine went, or said nothing this monitor can use.
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
		_exit(n == 0 ? 0 : 1);
	}
	for (char *e = msg + idlen + 1; e < msg + n; e += strlen(e) + 1) {
		char *eq = strchr(e, '=');
		if (eq == NULL || eq == e)
			continue;
		*eq = '\0';
		setenv(e, eq + 1, 1);
		*eq = '=';
	}
	if (title != NULL) {
		memset(title, 0, title_cap);
		memcpy(title, id, idlen);
	}
	const char *flags = getenv("_BERTH_MONITOR");
	int attached = flags != NULL && strchr(flags, 'a') != NULL;
	if (flags == NULL || strchr(flags, 'P') != NULL || attached != (npassed == 5)) {
		kill(child, SIGKILL);
		errno = EINVAL;
		fail("parked monitor: the engine's flags do not fit the files it passed");
	}
	// The passed files and the report socket are the lowest free fds,
	// which may be 4..6, where an attached start's stdio goes: out of
	// the way first, then into place (2 the log, 3 the notify pipe,
	// 4-6 the attached caller's stdin, stdout and stderr).
	int moved[5];
	for (int i = 0; i < npassed; i++) {
		moved[i] = fcntl(passed[i], F_DUPFD_CLOEXEC, 10);
		close(passed[i]);
		if (moved[i] < 0) {
			kill(child, SIGKILL);
			fail("parked monitor: take the passed files");
		}
	}
	int high_report = fcntl(report, F_DUPFD_CLOEXEC, 10);
	if (high_report < 0) {
		kill(child, SIGKILL);
		fail("parked monitor: move the report socket");
	}
	close(report);
	report = high_report;
	if (dup2(moved[0], 2) < 0 || (npassed >= 2 ? dup2(moved[1], 3) : close(3)) < 0 ||
	    (attached && (dup2(moved[2], 4) < 0 || dup2(moved[3], 5) < 0 || dup2(moved[4], 6) < 0))) {
		kill(child, SIGKILL);
		fail("parked monitor: take the log, notify and stdio files");
	}
	for (int i = 0; i < npassed; i++)
		close(moved[i]);
	parked_child = child;
	parked_report = report;
	run_monitor(flags);
}

// glibc passes argc, argv and envp to constructors.
__attribute__((constructor)) static void berth_monitor(int argc, char **argv, char **envp)
{
	(void)envp;
	const char *flags = getenv("_BERTH_MONITOR");
	if (!flags)
		return;
	if (strcmp(flags, "P") == 0)
		run_parked(argc > 1 ? argv[1] : NULL, argc > 1 ? strlen(argv[1]) : 0);
	else
		run_monitor(flags);
	// Only a forked child gets here; it continues into Go.
}
