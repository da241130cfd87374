// The container's init, forked ahead by `create` and `run`.
//
// A container's init used to start only once the runtime's Go side had
// started, read the bundle and exec'd the runtime binary again: two Go
// start-ups one after the other, ~2 ms each here, on every create. So when
// this process is the sealed runtime (see trampoline.c) running `create`
// or `run`, this constructor reads the bundle's linux.namespaces itself,
// before the Go runtime starts, and forks the init-to-be at once: it
// creates those namespaces (nsexec.c, with the config given here instead
// of by the socket) and starts its own Go runtime while ours starts. Its Go
// side then waits on the sync socket, as an exec'd init does.
//
// The Go side (spawn_linux.go, adoptPrefork) stays the judge. It adopts the
// process only if the namespaces it computes from the config it loaded are
// exactly the ones made here, and only for a create whose init is this very
// binary; otherwise it kills and reaps it and execs an init as before.
// Reading the config wrongly here can only waste the fork. The init gets
// its stdio and other descriptors from the parent over the socket
// (SCM_RIGHTS), not by inheritance, and its config as an exec'd init does.
//
// Only the simple, common case is taken here: namespaces to create, none to
// join, no user or time namespace (those need the parent's id maps or
// offsets first). Anything this file cannot read with certainty (an
// unknown flag, a duplicate key, an escape in a name) means no prefork.
// BERTH_PREFORK=0 turns it off.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "nsexec.h"

#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif

#define MAX_CONFIG (16 << 20)
#define MAX_DEPTH 64

volatile int berth_prefork_is_init;

// In the runtime: the socket to the forked process, its pid, the
// namespaces it creates and the number its end of the socket has there.
// -1/0 when nothing was forked; the Go side takes them once.
int berth_prefork_fd = -1;
int berth_prefork_pid;
unsigned long berth_prefork_flags;
int berth_prefork_child_fd = -1;

// In the runtime: the intermediate joins the init to its cgroup without a
// migration (cgroupfork.c), so the cgroup warm-up would only hold
// cgroup_mutex against it.
int berth_prefork_cgroup_planned;

// In the forked init: its end of the sync socket, or -1.
int berth_prefork_init_fd = -1;

// A minimal JSON reader, enough to find linux.namespaces and skip the rest.
struct js {
	const char *p, *end;
	int depth;
};

static void ws(struct js *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

static int eat(struct js *j, char c)
{
	ws(j);
	if (j->p < j->end && *j->p == c) {
		j->p++;
		return 1;
	}
	return 0;
}

// str reads a string. With out, it copies it there, and fails on any escape
// (no name or namespace type this file needs has one) or overflow.
static int str(struct js *j, char *out, size_t cap)
{
	ws(j);
	if (j->p >= j->end || *j->p != '"')
		return -1;
	j->p++;
	size_t n = 0;
	while (j->p < j->end && *j->p != '"') {
		unsigned char c = (unsigned char)*j->p;
		if (c < 0x20)
			return -1;
		if (c == '\\') {
			if (out != NULL || j->p + 1 >= j->end)
				return -1;
			j->p += 2;
			continue;
		}
		if (out != NULL) {
			if (n + 1 >= cap)
				return -1;
			out[n++] = (char)c;
		}
		j->p++;
	}
	if (j->p >= j->end)
		return -1;
	j->p++;
	if (out != NULL)
		out[n] = '\0';
	return 0;
}

static int skip(struct js *j);

static int skip_container(struct js *j, char open, char close)
{
	if (!eat(j, open) || ++j->depth > MAX_DEPTH)
		return -1;
	if (eat(j, close)) {
		j->depth--;
		return 0;
	}
	for (;;) {
		if (open == '{' && (str(j, NULL, 0) < 0 || !eat(j, ':')))
			return -1;
		if (skip(j) < 0)
			return -1;
		if (eat(j, ','))
			continue;
		if (!eat(j, close))
			return -1;
		j->depth--;
		return 0;
	}
}

static int skip(struct js *j)
{
	ws(j);
	if (j->p >= j->end)
		return -1;
	switch (*j->p) {
	case '{':
		return skip_container(j, '{', '}');
	case '[':
		return skip_container(j, '[', ']');
	case '"':
		return str(j, NULL, 0);
	}
	// true, false, null or a number: a run of their characters.
	const char *start = j->p;
	while (j->p < j->end && strchr("truefalsn0123456789+-.eE", *j->p) != NULL)
		j->p++;
	return j->p > start ? 0 : -1;
}

static unsigned long ns_flag(const char *type)
{
	static const struct {
		const char *name;
		unsigned long flag;
	} table[] = {
		{"pid", CLONE_NEWPID}, {"network", CLONE_NEWNET}, {"mount", CLONE_NEWNS},
		{"ipc", CLONE_NEWIPC}, {"uts", CLONE_NEWUTS},      {"cgroup", CLONE_NEWCGROUP},
	};
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (strcmp(type, table[i].name) == 0)
			return table[i].flag;
	return 0; // user, time (not taken here) or unknown
}

// namespaces reads the array linux.namespaces into clone flags; -1 where
// one is to be joined or is not for this file.
static int namespaces(struct js *j, unsigned long *flags)
{
	if (!eat(j, '['))
		return -1;
	if (eat(j, ']'))
		return 0;
	for (;;) {
		char type[32] = "", key[32];
		int has_type = 0;
		if (!eat(j, '{'))
			return -1;
		if (!eat(j, '}')) {
			for (;;) {
				if (str(j, key, sizeof(key)) < 0 || !eat(j, ':'))
					return -1;
				if (strcmp(key, "type") == 0) {
					if (has_type || str(j, type, sizeof(type)) < 0)
						return -1;
					has_type = 1;
				} else if (strcmp(key, "path") == 0) {
					char path[2];
					// Only "" (create) is taken; a path to join is not.
					if (str(j, path, sizeof(path)) < 0 || path[0] != '\0')
						return -1;
				} else if (skip(j) < 0) {
					return -1;
				}
				if (eat(j, ','))
					continue;
				if (!eat(j, '}'))
					return -1;
				break;
			}
		}
		unsigned long f = ns_flag(type);
		if (!has_type || f == 0)
			return -1;
		*flags |= f;
		if (eat(j, ','))
			continue;
		return eat(j, ']') ? 0 : -1;
	}
}

// member reads an object member's name and its colon. A name that str
// cannot copy (too long, or with an escape) is none this file looks for:
// it reads as "".
static int member(struct js *j, char *name, size_t cap)
{
	const char *at = j->p;
	if (str(j, name, cap) < 0) {
		j->p = at;
		if (str(j, NULL, 0) < 0)
			return -1;
		name[0] = '\0';
	}
	return eat(j, ':') ? 0 : -1;
}

// object reads an object, handing each member to on (which reads its
// value) with its name ("" for a name member cannot copy).
static int object(struct js *j, int (*on)(struct js *j, const char *name, void *ctx), void *ctx)
{
	char name[32];
	if (!eat(j, '{'))
		return -1;
	if (eat(j, '}'))
		return 0;
	for (;;) {
		if (member(j, name, sizeof(name)) < 0 || on(j, name, ctx) < 0)
			return -1;
		if (eat(j, ','))
			continue;
		return eat(j, '}') ? 0 : -1;
	}
}

struct seen {
	int linux_seen, ns_seen, cg_seen;
	unsigned long *flags;
	// linux.cgroupsPath ("" when absent); cg_ok 0 where it could not be
	// read with certainty (an escape, not a string): then no cgroup here.
	char *cgpath;
	size_t cgcap;
	int cg_ok;
};

static int linux_member(struct js *j, const char *name, void *ctx)
{
	struct seen *s = ctx;
	// Go's decoder matches member names without regard to case (the
	// last match wins) and decodes escaped names, which this reader
	// leaves unread (""): either could be a cgroupsPath it does not see.
	if (name[0] == '\0' || (strcasecmp(name, "cgroupsPath") == 0 && strcmp(name, "cgroupsPath") != 0))
		s->cg_ok = 0;
	if (strcmp(name, "cgroupsPath") == 0) {
		const char *at = j->p;
		if (s->cg_seen++ || str(j, s->cgpath, s->cgcap) < 0) {
			j->p = at;
			s->cg_ok = 0;
			return skip(j);
		}
		return 0;
	}
	if (strcmp(name, "namespaces") != 0)
		return skip(j);
	if (s->ns_seen++)
		return -1;
	return namespaces(j, s->flags);
}

static int top_member(struct js *j, const char *name, void *ctx)
{
	struct seen *s = ctx;
	// Another "linux" to Go's decoder: the cgroupsPath may be its.
	if (name[0] == '\0' || (strcasecmp(name, "linux") == 0 && strcmp(name, "linux") != 0))
		s->cg_ok = 0;
	if (strcmp(name, "linux") != 0)
		return skip(j);
	if (s->linux_seen++)
		return -1;
	return object(j, linux_member, s);
}

// berth_prefork_config finds linux.namespaces in a config.json. It answers
// only for a document it read whole, with one "linux" (an object) and at
// most one "namespaces". It reads linux.cgroupsPath into cgpath too:
// *cg_ok is 1 when it was read ("" when absent), 0 when it was not (then
// cgpath is "").
int berth_prefork_config(const char *buf, size_t len, unsigned long *flags, char *cgpath, size_t cgcap, int *cg_ok)
{
	struct js j = {buf, buf + len, 0};
	struct seen s = {0, 0, 0, flags, cgpath, cgcap, 1};
	*flags = 0;
	cgpath[0] = '\0';
	int r = object(&j, top_member, &s);
	ws(&j);
	if (r < 0 || j.p != j.end || !s.linux_seen)
		return -1;
	if (!s.cg_ok)
		cgpath[0] = '\0';
	*cg_ok = s.cg_ok;
	return 0;
}

static const char *base_name(const char *p)
{
	const char *s = strrchr(p, '/');
	return s != NULL ? s + 1 : p;
}

// flag_value says whether a flag of the runtime CLI takes a value: 1 yes,
// 0 no (a bool), -1 unknown (then no prefork). name is without its dashes
// and anything from '='.
static int flag_value(const char *name, size_t len)
{
	static const char *const with[] = {"root", "log", "log-format", "rootless", "criu", "bundle", "b",
					   "console-socket", "pid-file", "preserve-fds"};
	static const char *const without[] = {"debug", "systemd-cgroup", "no-pivot", "no-new-keyring", "detach", "d", "keep"};
	for (size_t i = 0; i < sizeof(with) / sizeof(with[0]); i++)
		if (strlen(with[i]) == len && strncmp(name, with[i], len) == 0)
			return 1;
	for (size_t i = 0; i < sizeof(without) / sizeof(without[0]); i++)
		if (strlen(without[i]) == len && strncmp(name, without[i], len) == 0)
			return 0;
	return -1;
}

// parse_args finds, in a runtime CLI's argv, a create or run and its bundle
// and --preserve-fds, and whether it is a run that stays attached; -1 for
// anything else or anything not understood.
static int parse_args(int argc, char **argv, const char **bundle, long *preserve, int *attached, const char **id,
		      int *systemd)
{
	int i;
	if (strcmp(base_name(argv[0]), "berth-runtime") == 0)
		i = 1;
	else if (argc > 1 && strcmp(argv[1], "runtime") == 0)
		i = 2;
	else
		return -1;
	int command = 0, run = 0, detach = 0;
	*bundle = ".";
	*preserve = 0;
	*id = NULL;
	*systemd = 0;
	for (; i < argc; i++) {
		const char *a = argv[i];
		if (a[0] != '-' || a[1] == '\0') {
			if (!command) {
				if (strcmp(a, "create") != 0 && strcmp(a, "run") != 0)
					return -1;
				command = 1;
				run = strcmp(a, "run") == 0;
			} else if (*id == NULL) {
				*id = a;
			}
			continue;
		}
		const char *name = a + (a[1] == '-' ? 2 : 1);
		if (a[1] != '-' && strlen(name) > 1 && name[1] != '=')
			return -1; // -bVALUE or combined short flags: not worth reading
		const char *eq = strchr(name, '=');
		size_t len = eq != NULL ? (size_t)(eq - name) : strlen(name);
		int takes = flag_value(name, len);
		if (takes < 0 || len == 0)
			return -1;
		if (!takes) {
			if (len == 14 && strncmp(name, "systemd-cgroup", 14) == 0)
				*systemd = eq == NULL || strcmp(eq + 1, "false") != 0;
			if ((len == 6 && strncmp(name, "detach", 6) == 0) || (len == 1 && name[0] == 'd'))
				detach = eq == NULL || strcmp(eq + 1, "false") != 0;
			continue;
		}
		const char *value = eq != NULL ? eq + 1 : NULL;
		if (value == NULL) {
			if (i + 1 >= argc)
				return -1;
			value = argv[++i];
		}
		if ((len == 6 && strncmp(name, "bundle", 6) == 0) || (len == 1 && name[0] == 'b')) {
			*bundle = value;
		} else if (len == 12 && strncmp(name, "preserve-fds", 12) == 0) {
			char *end;
			*preserve = strtol(value, &end, 10);
			if (*end != '\0' || *preserve < 0 || *preserve > 4096)
				return -1;
		}
	}
	*attached = run && !detach;
	return command ? 0 : -1;
}

// cgroup_v1_layout says whether /sys/fs/cgroup is the tmpfs of a v1 or
// hybrid host, the layouts cgroupfork.c takes: elsewhere planning would
// only turn the warm-up off for a move that still comes.
static int cgroup_v1_layout(void)
{
	struct statfs fs;
	return statfs("/sys/fs/cgroup", &fs) == 0 && fs.f_type == 0x01021994; // TMPFS_MAGIC
}

static char *read_config(const char *bundle, size_t *len)
{
	char path[4096];
	if ((size_t)snprintf(path, sizeof(path), "%s/config.json", bundle) >= sizeof(path))
		return NULL;
	// Only a regular file: opening a fifo would block, or take a writer's
	// peer away from the runtime's own read.
	struct stat st;
	if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
		return NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 || st.st_size > MAX_CONFIG) {
		close(fd);
		return NULL;
	}
	char *buf = malloc((size_t)st.st_size);
	size_t got = 0;
	while (buf != NULL && got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n <= 0) {
			free(buf);
			buf = NULL;
			break;
		}
		got += (size_t)n;
	}
	close(fd);
	*len = got;
	return buf;
}

// above moves fd to the lowest free number >= min, close-on-exec.
static int above(int fd, int min)
{
	if (fd >= min)
		return fd;
	int d = fcntl(fd, F_DUPFD_CLOEXEC, min);
	close(fd);
	return d;
}

// undo_ignored_relayed gives an attached run's init what an exec'd one
// gets: the runtime's Go side catches every signal it relays to the
// container (internal/sigrelay) before it execs an init, which replaces a
// SIG_IGN inherited from the caller (the Go runtime itself keeps SIGHUP's
// and SIGINT's) with a handler that execve resets. So the container's
// process starts with those signals at their default, as with runc.
static void undo_ignored_relayed(void)
{
	for (int sig = 1; sig <= 64; sig++) {
		switch (sig) {
		case SIGKILL: case SIGSTOP: case SIGCHLD: case SIGPIPE: case SIGURG: case SIGSEGV: case SIGBUS:
		case SIGFPE: case SIGILL: case SIGTRAP: case SIGPROF: case SIGSYS: case SIGWINCH: case 32: case 33:
			continue; // not relayed (sigrelay.Forwarded)
		}
		struct sigaction old;
		if (sigaction(sig, NULL, &old) == 0 && old.sa_handler == SIG_IGN) {
			struct sigaction dfl;
			memset(&dfl, 0, sizeof(dfl));
			dfl.sa_handler = SIG_DFL;
			sigaction(sig, &dfl, NULL);
		}
	}
}

// close_unpassed leaves the forked init what an exec'd one is given
// (spawn_linux.go): stdio, the preserved descriptors 3..keep-1 and its end
// of the sync socket; its stdio and the files spawn passes come over the
// socket. Anything else the caller left open without passing it
// (--preserve-fds) would stay open in a created container until its start,
// and whoever reads a pipe behind it would wait that long for its end.
static void close_unpassed(int keep, int sock)
{
	if (sock > keep && close_range((unsigned)keep, (unsigned)sock - 1, 0) < 0 && errno == ENOSYS) {
		for (int fd = keep; fd < sock; fd++)
			close(fd);
	}
	if (close_range((unsigned)sock + 1, ~0U, 0) < 0 && errno == ENOSYS) {
		struct rlimit rl;
		int max = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 1 << 20 ? (int)rl.rlim_cur : 1 << 20;
		for (int fd = sock + 1; fd < max; fd++)
			close(fd);
	}
}

// Priority 102: after the trampoline (101), which may exec elsewhere, and
// before the cgroup warm-up starts its thread.
__attribute__((constructor(102))) static void berth_prefork(int argc, char **argv, char **envp)
{
	if (argc < 2 || argv == NULL || getenv("_BERTH_NSEXEC") != NULL || getenv("_BERTH_INIT") != NULL ||
	    getenv("_BERTH_MONITOR") != NULL || getenv("BERTH_AGENT") != NULL)
		return;
	const char *off = getenv("BERTH_PREFORK");
	if (off != NULL && strcmp(off, "0") == 0)
		return;
	const char *bundle, *id;
	long preserve;
	int attached, systemd;
	if (parse_args(argc, argv, &bundle, &preserve, &attached, &id, &systemd) < 0)
		return;
	// The init runs this very file: only a seal may be it (CVE-2019-5736).
	// The Go side checks again that it is the one it would exec.
	if (berth_self_sealed() != 1)
		return;
	size_t len;
	char *config = read_config(bundle, &len);
	if (config == NULL)
		return;
	unsigned long flags;
	char cgpath[4096];
	int cg_ok;
	int ok = berth_prefork_config(config, len, &flags, cgpath, sizeof(cgpath), &cg_ok);
	free(config);
	if (ok < 0)
		return;
	// The intermediate forks the init into its cgroup (cgroupfork.c) when
	// there is an intermediate (a new pid namespace) and the cgroupfs
	// driver places the cgroup by a path this file can compute.
	berth_prefork_cgroup[0] = '\0';
	if (cg_ok && !systemd && (flags & CLONE_NEWPID) && cgroup_v1_layout() &&
	    berth_cgroup_inner(cgpath, id, berth_prefork_cgroup, sizeof(berth_prefork_cgroup)) < 0)
		berth_prefork_cgroup[0] = '\0';
	// create moves the init into its cgroup while it works, and the init
	// makes its cgroup namespace after that (spawnRequest.lateCgroup).
	flags &= ~(unsigned long)CLONE_NEWCGROUP;

	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return;
	// Above the descriptors the container is to keep (3..3+preserve-1).
	sv[0] = above(sv[0], 3 + (int)preserve);
	sv[1] = above(sv[1], 3 + (int)preserve);
	if (sv[0] < 0 || sv[1] < 0) {
		if (sv[0] >= 0)
			close(sv[0]);
		if (sv[1] >= 0)
			close(sv[1]);
		return;
	}
	pid_t pid = fork();
	if (pid < 0) {
		close(sv[0]);
		close(sv[1]);
		return;
	}
	if (pid == 0) {
		close(sv[0]);
		close_unpassed(3 + (int)preserve, sv[1]);
		berth_prefork_is_init = 1;
		char ns[64];
		snprintf(ns, sizeof(ns), "clone %lu\nend\n", flags);
		berth_nsexec_enter(sv[1], ns);
		// The init-to-be: on into the Go runtime and linux.Init. An
		// exec'd init has none of the caller's environment; neither
		// does this one, whose environment block is the caller's (it
		// would show in /proc/<pid>/environ until the container's
		// execve): wipe it, but for BERTH_TRACE.
		for (char **e = envp; e != NULL && *e != NULL; e++)
			if (strncmp(*e, "BERTH_TRACE=", 12) != 0)
				memset(*e, 0, strlen(*e));
		// Nor its arguments (bundle, log, pid file and console paths):
		// /proc/<pid>/cmdline shows the program's name only.
		for (int i = 1; i < argc; i++)
			memset(argv[i], 0, strlen(argv[i]));
		if (attached)
			undo_ignored_relayed();
		berth_prefork_init_fd = sv[1];
		return;
	}
	berth_prefork_cgroup_planned = berth_prefork_cgroup[0] != '\0';
	berth_prefork_cgroup[0] = '\0'; // the intermediate's, not ours
	close(sv[1]);
	berth_prefork_fd = sv[0];
	berth_prefork_pid = pid;
	berth_prefork_flags = flags;
	berth_prefork_child_fd = sv[1];
}
