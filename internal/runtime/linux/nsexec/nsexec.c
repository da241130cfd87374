// Namespace entry for berth's container init and exec processes.
//
// This runs as an ELF constructor, before the Go runtime starts any thread,
// because setns(2) into a mount or user namespace and unshare(CLONE_NEWUSER)
// are refused to multi-threaded processes. It does nothing unless the
// environment variable _BERTH_NSEXEC names the file descriptor of the sync
// socket shared with the runtime process that started us.
//
// Protocol on the sync socket (text lines, parent -> child, ended by "end"):
//   clone <flags>            namespaces to create (CLONE_NEW* bits, decimal)
//   join <nstype> <path>     namespace to join (nstype is a CLONE_NEW* bit)
//   timens <clock> <s> <ns>  time namespace offset (needs CLONE_NEWTIME)
//   cgroup-join <dir>        exec: a cgroup directory to be in (cgroupfork.c:
//                            v1 through "tasks" before joining, cgroup2 by
//                            the fork; "cgroup-in" before "pid" if all went)
//   cgroup-make <path>       create: the container's cgroup below each
//                            hierarchy's root (absolute, clean), to be made
//                            and forked into as a preforked init's is
//                            (cgroupfork.c: "cgroup-made", "cgroup-in")
//   root <path>              after joining, chroot to this directory (exec:
//                            /proc/<init>/root, opened before joining, so
//                            the process gets the init's root whether it
//                            pivoted, moved or chrooted)
//   chdir <path>             before joining, make this the working
//                            directory (create in a user namespace: the
//                            rootfs, which its root may not be allowed to
//                            look up; a new mount namespace takes the
//                            working directory along into its copy of the
//                            mount)
//   end
// Child -> parent:
//   userns                   a new user namespace exists; the parent writes
//                            uid_map/gid_map for our pid and answers "mapped"
//   cgroup-made <dir>        a cgroup leaf made for a forked init (cgroupfork.c)
//   cgroup-in                the process named by "pid" is in its cgroup:
//                            the leaves made, or the "cgroup-join" ones
//   pid <n>                  the pid (in the parent's pid namespace) of the
//                            process that will continue as container init
//   error <message>          setup failed; the child exits 1
//
// Order: open every path first (they are host paths), chdir, join the
// namespaces (mnt last; a user namespace after those its caller can join
// without it, see join_all), create a user namespace, create the rest, then fork once if the pid or time namespace changed, because
// those only apply to children. The fork uses CLONE_PARENT so the final
// process is a child of the runtime process and can be waited for.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif

#include "nsexec.h"

#define MAX_JOIN 16
#define MAX_TIMENS 4

struct join {
	int type;
	int fd;
	char path[4096];
};

static int sync_fd = -1;

static void writeall(const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(sync_fd, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			_exit(1);
		}
		buf += n;
		len -= (size_t)n;
	}
}

static void say(const char *fmt, ...)
{
	char buf[8192];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		_exit(1);
	if ((size_t)n >= sizeof(buf))
		n = sizeof(buf) - 1;
	writeall(buf, (size_t)n);
}

__attribute__((noreturn)) static void bail(const char *fmt, ...)
{
	char msg[6000];
	int saved = errno;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	for (char *p = msg; *p; p++)
		if (*p == '\n')
			*p = ' ';
	say("error %s: %s\n", msg, strerror(saved));
	_exit(1);
}

// preset, when set (a pre-forked init, see prefork.c), is the namespace
// config itself: readline takes its lines instead of the socket's.
static const char *preset;

// readline reads one line from the sync socket byte by byte: the socket also
// carries the Go side's messages after ours, which must stay unread.
static int readline(char *buf, size_t size)
{
	size_t i = 0;
	if (preset != NULL) {
		if (*preset == '\0')
			return -1;
		while (*preset != '\0' && *preset != '\n' && i + 1 < size)
			buf[i++] = *preset++;
		if (*preset == '\n')
			preset++;
		buf[i] = '\0';
		return (int)i;
	}
	while (i + 1 < size) {
		char c;
		ssize_t n = read(sync_fd, &c, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		if (c == '\n')
			break;
		buf[i++] = c;
	}
	buf[i] = '\0';
	return (int)i;
}

static const char *nsname(int type)
{
	switch (type) {
	case CLONE_NEWUSER: return "user";
	case CLONE_NEWNS: return "mnt";
	case CLONE_NEWPID: return "pid";
	case CLONE_NEWNET: return "net";
	case CLONE_NEWIPC: return "ipc";
	case CLONE_NEWUTS: return "uts";
	case CLONE_NEWCGROUP: return "cgroup";
	case CLONE_NEWTIME: return "time";
	}
	return "unknown";
}

// join_type joins the namespaces of one type; with tolerate, one the
// kernel refuses with EPERM is left for later (its fd stays open) and 1
// returned.
static int join_type(struct join *joins, int n, int type, int tolerate)
{
	int left = 0;
	for (int i = 0; i < n; i++) {
		if (joins[i].type != type || joins[i].fd < 0)
			continue;
		if (setns(joins[i].fd, type) < 0) {
			if (tolerate && errno == EPERM) {
				left = 1;
				continue;
			}
			bail("join %s namespace %s", nsname(type), joins[i].path);
		}
		close(joins[i].fd);
		joins[i].fd = -1;
	}
	return left;
}

static const int join_order[] = {CLONE_NEWIPC, CLONE_NEWUTS, CLONE_NEWNET, CLONE_NEWPID, CLONE_NEWTIME, CLONE_NEWCGROUP, CLONE_NEWNS};
#define NORDER (int)(sizeof(join_order) / sizeof(join_order[0]))

// join_all joins every namespace, mnt last. Without a user namespace
// among them that is all. With one, each of the others is first tried
// with the caller's own privilege: a namespace owned by an ancestor of
// the joined user namespace (an engine's network namespace, made by the
// host's root for a container that has a user namespace of its own) can
// only be joined from outside, since inside the container's user
// namespace nothing of the host's is ours. Then the user namespace, then
// what needed it (a rootless caller's).
static void join_all(struct join *joins, int n)
{
	int has_user = 0;
	for (int i = 0; i < n; i++)
		if (joins[i].type == CLONE_NEWUSER)
			has_user = 1;
	if (!has_user) {
		for (int k = 0; k < NORDER; k++)
			join_type(joins, n, join_order[k], 0);
		return;
	}
	for (int k = 0; k < NORDER; k++)
		join_type(joins, n, join_order[k], 1);
	join_type(joins, n, CLONE_NEWUSER, 0);
	for (int k = 0; k < NORDER; k++)
		join_type(joins, n, join_order[k], 0);
}

static int tracing = -1;

// trace prints, with BERTH_TRACE set, the time of a step in the format of
// the Go side's tracePhase (see trace_linux.go).
static void trace(const char *phase)
{
	if (tracing < 0)
		tracing = getenv("BERTH_TRACE") != NULL;
	if (!tracing)
		return;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	long long ns = ((long long)ts.tv_sec * 1000000000LL + ts.tv_nsec) % 100000000000LL;
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	fprintf(stderr, "trace %d %.3f %s minflt=%ld\n", (int)getpid(), (double)ns / 1e6, phase, ru.ru_minflt);
}

__attribute__((constructor)) static void berth_nsexec(void)
{
	if (berth_prefork_is_init)
		return;
	trace("exec");
	const char *env = getenv("_BERTH_NSEXEC");
	if (env == NULL)
		return;
	unsetenv("_BERTH_NSEXEC");
	berth_nsexec_enter(atoi(env), NULL);
}

// berth_nsexec_enter does what the protocol above asks, on socket fd, with
// the config read from it or, when config is set, taken from there (the
// child still says "pid" or "error" on fd). It returns in the process that
// goes on as the container's init or exec process; an intermediate exits.
void berth_nsexec_enter(int fd, const char *config)
{
	sync_fd = fd;
	preset = config;
	// Until execve, /proc/<pid>/exe of this process is the runtime binary:
	// keep processes in the container from opening it (CVE-2019-5736).
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

	struct join joins[MAX_JOIN];
	int njoin = 0;
	unsigned long flags = 0;
	char timens[MAX_TIMENS][128];
	int ntimens = 0;
	char line[4200];
	char rootpath[4200] = "";
	char cwdpath[4200] = "";

	for (;;) {
		if (readline(line, sizeof(line)) < 0)
			bail("read namespace config from sync socket");
		if (strcmp(line, "end") == 0)
			break;
		if (strncmp(line, "clone ", 6) == 0) {
			flags = strtoul(line + 6, NULL, 10);
		} else if (strncmp(line, "join ", 5) == 0) {
			char *end;
			if (njoin == MAX_JOIN) {
				errno = E2BIG;
				bail("too many namespaces to join");
			}
			joins[njoin].type = (int)strtol(line + 5, &end, 10);
			if (*end != ' ') {
				errno = EINVAL;
				bail("malformed join line %s", line);
			}
			snprintf(joins[njoin].path, sizeof(joins[njoin].path), "%s", end + 1);
			njoin++;
		} else if (strncmp(line, "cgroup-join ", 12) == 0) {
			if (berth_cgroup_join_add(line + 12) < 0) {
				errno = E2BIG;
				bail("too many cgroup directories to join");
			}
		} else if (strncmp(line, "cgroup-make ", 12) == 0) {
			// Taken only as berth_cgroup_inner cleans it; else the
			// runtime places the init itself.
			if (berth_cgroup_inner(line + 12, "", berth_prefork_cgroup, sizeof(berth_prefork_cgroup)) < 0 ||
			    strcmp(berth_prefork_cgroup, line + 12) != 0)
				berth_prefork_cgroup[0] = '\0';
		} else if (strncmp(line, "root ", 5) == 0) {
			snprintf(rootpath, sizeof(rootpath), "%s", line + 5);
		} else if (strncmp(line, "chdir ", 6) == 0) {
			snprintf(cwdpath, sizeof(cwdpath), "%s", line + 6);
		} else if (strncmp(line, "timens ", 7) == 0) {
			if (ntimens == MAX_TIMENS) {
				errno = E2BIG;
				bail("too many time namespace offsets");
			}
			if (strlen(line + 7) + 2 > sizeof(timens[0])) {
				errno = EINVAL;
				bail("time namespace offset too long");
			}
			snprintf(timens[ntimens++], sizeof(timens[0]), "%.120s\n", line + 7);
		} else {
			errno = EINVAL;
			bail("unknown namespace config line %s", line);
		}
	}
	preset = NULL; // anything after the config comes from the runtime

	// Open every path while the host's mount namespace is still ours.
	for (int i = 0; i < njoin; i++) {
		joins[i].fd = open(joins[i].path, O_RDONLY | O_CLOEXEC);
		if (joins[i].fd < 0)
			bail("open %s namespace %s", nsname(joins[i].type), joins[i].path);
	}
	int rootfd = -1;
	if (rootpath[0] != '\0') {
		rootfd = open(rootpath, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (rootfd < 0)
			bail("open the container's root %s", rootpath);
	}
	int need_fork = (flags & (CLONE_NEWPID | CLONE_NEWTIME)) != 0;
	for (int i = 0; i < njoin; i++)
		if (joins[i].type == CLONE_NEWPID || joins[i].type == CLONE_NEWTIME)
			need_fork = 1;
	// The cgroup's host paths too, while we are single-threaded.
	berth_cgroup_join_now();
	// Forking into the cgroup2 directory (cgroupfork.c) is checked against
	// our cgroup namespace: in the container's, our own cgroup is outside
	// its root (ENOENT where the hierarchy is mounted with nsdelegate). So
	// the forked process joins that namespace itself, after the fork.
	// (Not with a user namespace to join: there the fork into the cgroup
	// is refused anyway, to the mapped credentials, and the parent moves.)
	int late_cgroupns = -1, joins_user = 0;
	for (int i = 0; i < njoin; i++)
		if (joins[i].type == CLONE_NEWUSER)
			joins_user = 1;
	if (need_fork && !joins_user && berth_cgroup_joining()) {
		for (int i = 0; i < njoin; i++) {
			if (joins[i].type == CLONE_NEWCGROUP) {
				late_cgroupns = joins[i].fd;
				joins[i] = joins[--njoin];
				break;
			}
		}
	}
	if (cwdpath[0] != '\0' && chdir(cwdpath) < 0)
		bail("change directory to %s", cwdpath);
	join_all(joins, njoin);
	if (rootfd >= 0) {
		if (fchdir(rootfd) < 0 || chroot(".") < 0 || chdir("/") < 0)
			bail("enter the container's root %s", rootpath);
		close(rootfd);
	}

	int in_userns = 0;
	for (int i = 0; i < njoin; i++)
		if (joins[i].type == CLONE_NEWUSER)
			in_userns = 1;

	if (flags & CLONE_NEWUSER) {
		if (unshare(CLONE_NEWUSER) < 0)
			bail("create user namespace");
		// The parent writes our id maps; we must stay dumpable for it to
		// open /proc/<pid>/uid_map.
		prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
		say("userns\n");
		if (readline(line, sizeof(line)) < 0 || strcmp(line, "mapped") != 0) {
			errno = EPROTO;
			bail("wait for the runtime to write the id mappings");
		}
		prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
		in_userns = 1;
	}
	if (in_userns) {
		if (setresgid(0, 0, 0) < 0)
			bail("setresgid to root of the user namespace");
		if (setresuid(0, 0, 0) < 0)
			bail("setresuid to root of the user namespace");
	}

	unsigned long rest = flags & ~(unsigned long)CLONE_NEWUSER;
	if (rest != 0 && unshare((int)rest) < 0)
		bail("create namespaces (flags 0x%lx)", rest);

	if (ntimens > 0) {
		int fd = open("/proc/self/timens_offsets", O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			bail("open /proc/self/timens_offsets");
		for (int i = 0; i < ntimens; i++) {
			if (write(fd, timens[i], strlen(timens[i])) < 0)
				bail("write time namespace offset %s", timens[i]);
		}
		close(fd);
	}

	trace("namespaces");
	if (!need_fork) {
		// Also closes the cgroup2 directory it opened: a host directory
		// must not stay open into the container.
		if (berth_cgroup_unforked())
			say("cgroup-in\n");
		say("pid %d\n", getpid());
		return;
	}
	// Into the cgroup where cgroupfork.c was asked to (made or joined),
	// else a plain fork.
	pid_t child = berth_cgroup_fork(sync_fd);
	if (child < 0)
		bail("fork into the new pid namespace");
	if (child > 0) {
		say("pid %d\n", child);
		_exit(0);
	}
	if (late_cgroupns >= 0) {
		if (setns(late_cgroupns, CLONE_NEWCGROUP) < 0)
			bail("join cgroup namespace");
		close(late_cgroupns);
	}
	// The child continues into the Go runtime.
	trace("forked");
}
