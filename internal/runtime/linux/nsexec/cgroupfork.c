// A forked init's cgroup, joined without a migration.
//
// Moving a process into a cgroup by writing its pid to cgroup.procs takes
// the kernel's cgroup_threadgroup_rwsem for writing, and a writer that
// finds it idle waits for an RCU grace period (7-12 ms on the development
// host, HZ=250 with lazy RCU) holding cgroup_mutex. That wait was the
// floor of a create. Two ways into a cgroup skip the rwsem:
//
//   - a thread moving itself alone: "0" written to a cgroup v1 "tasks"
//     file (the kernel needs no threadgroup stability for current; a
//     single-threaded process moves whole);
//   - clone3 with CLONE_INTO_CGROUP, which places the child in a cgroup2
//     directory at birth.
//
// So prefork.c's intermediate, or an exec'd init's when the runtime asks
// ("cgroup-make": the engine's starts, nsexec.c), single-threaded, its
// namespaces made, about to fork the init into the new pid namespace,
// makes the container's leaf cgroup in every v1 hierarchy, joins each
// through "tasks", and forks the init into the leaf of the cgroup2
// hierarchy of a hybrid host. The init
// inherits the v1 memberships and starts its Go runtime inside them, as an
// init that runc moves early does. The Go side (spawn_linux.go) writes the
// limits before it lets the init go on past its mounts, and remains the
// judge: it keeps the membership only when the directories made here are
// exactly the ones it computes; otherwise it moves the init as before and
// removes these.
//
// Taken only where this file can be sure: a v1 or hybrid host whose
// hierarchies are mounted at /sys/fs/cgroup/<name> from their roots, the
// cgroupfs driver, a cgroupsPath that is empty (/berth/<id>) or absolute,
// and a leaf that does not exist yet in any hierarchy (a cgroup that holds
// processes already is joined by the Go side, by a move). Anything else,
// or any error, and nothing is left here: the Go side does it all.
//
// Lines on the sync socket, before "pid":
//   cgroup-made <dir>   a leaf made here (whoever does not use it removes it)
//   cgroup-in           the init is in every leaf made here
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include "nsexec.h"

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

#ifndef CGROUP_SUPER_MAGIC
#define CGROUP_SUPER_MAGIC 0x27e0eb
#endif
#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

#define CG_MOUNTS "/sys/fs/cgroup/"
#define MAX_HIER 32
#define CG_PATH 4352

char berth_prefork_cgroup[4096];

struct hier {
	char dir[CG_PATH]; // the container's leaf
	int cpuset, v2, made;
};

// read_small reads a file whole into buf, NUL-terminated; -1 on error or
// when it does not fit.
static int read_small(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t got = 0;
	for (;;) {
		ssize_t n = read(fd, buf + got, cap - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || (got += (size_t)n) == cap - 1) {
			close(fd);
			if (n < 0 || got == cap - 1)
				return -1;
			break;
		}
	}
	buf[got] = '\0';
	return (int)got;
}

static int write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, s, strlen(s));
	close(fd);
	return n == (ssize_t)strlen(s) ? 0 : -1;
}

static int has_token(const char *list, const char *tok)
{
	size_t n = strlen(tok);
	for (const char *p = list; *p != '\0';) {
		const char *e = strchr(p, ',');
		size_t len = e != NULL ? (size_t)(e - p) : strlen(p);
		if (len == n && strncmp(p, tok, n) == 0)
			return 1;
		if (e == NULL)
			break;
		p = e + 1;
	}
	return 0;
}

// known says whether a v1 hierarchy's mount options name a controller (or
// name=) that the cgroup library places a container in
// (opencontainers/cgroups, fs.subsystems): in one it does not, the init
// would stay behind when the Go side moves it.
static int known(const char *super)
{
	static const char *const used[] = {"cpuset",    "devices",    "memory",  "cpu",  "cpuacct",
					   "pids",      "blkio",      "hugetlb", "net_cls", "net_prio",
					   "perf_event", "freezer",   "rdma",    "misc", "name=systemd"};
	for (size_t i = 0; i < sizeof(used) / sizeof(used[0]); i++)
		if (has_token(super, used[i]))
			return 1;
	return 0;
}

// hierarchies lists the cgroup mounts as leaves below inner; -1 where the
// layout is not one this file takes.
static int hierarchies(const char *inner, struct hier *h)
{
	static char buf[1 << 20]; // a node with many mounts has a long mountinfo
	if (read_small("/proc/self/mountinfo", buf, sizeof(buf)) < 0)
		return -1;
	int count = 0, v2 = 0;
	char *save = NULL;
	for (char *line = strtok_r(buf, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		// id parent maj:min root mountpoint options [optional...] - fstype source superoptions
		char *f[5], *rest = line;
		int i;
		for (i = 0; i < 5; i++) {
			f[i] = strsep(&rest, " ");
			if (f[i] == NULL)
				break;
		}
		char *dash = i == 5 && rest != NULL ? strstr(rest, " - ") : NULL;
		if (dash == NULL)
			continue;
		char *tail = dash + 3;
		char *fstype = strsep(&tail, " ");
		strsep(&tail, " "); // source
		const char *super = tail != NULL ? tail : "";
		if (fstype == NULL || (strcmp(fstype, "cgroup") != 0 && strcmp(fstype, "cgroup2") != 0))
			continue;
		const char *mnt = f[4], *root = f[3];
		int is_v2 = strcmp(fstype, "cgroup2") == 0;
		if (strncmp(mnt, CG_MOUNTS, strlen(CG_MOUNTS)) != 0) {
			if (strcmp(mnt, "/sys/fs/cgroup") == 0)
				return -1; // a cgroup v2 host, or something stranger
			continue; // mounted elsewhere (a container's view, a bind)
		}
		const char *name = mnt + strlen(CG_MOUNTS);
		if (strcmp(root, "/") != 0 || name[0] == '\0' || strchr(name, '/') != NULL || strchr(name, '\\') != NULL)
			return -1;
		if (is_v2 && (v2++ || strcmp(name, "unified") != 0))
			return -1;
		if (!is_v2 && !known(super))
			return -1;
		if (count == MAX_HIER)
			return -1;
		if ((size_t)snprintf(h[count].dir, sizeof(h[count].dir), "%s%s", mnt, inner) >= sizeof(h[count].dir))
			return -1;
		for (int k = 0; k < count; k++)
			if (strcmp(h[k].dir, h[count].dir) == 0)
				return -1; // mounted twice at one place
		h[count].v2 = is_v2;
		h[count].cpuset = !is_v2 && has_token(super, "cpuset");
		h[count].made = 0;
		count++;
	}
	return count;
}

// copy_if_empty gives a new cpuset directory its parent's cpus or mems:
// an empty one takes no tasks (cgroup v1 without clone_children).
static int copy_if_empty(const char *dir, const char *file)
{
	char path[CG_PATH + 32], val[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	if (read_small(path, val, sizeof(val)) < 0)
		return -1;
	if (val[0] != '\0' && val[0] != '\n')
		return 0;
	char parent[CG_PATH + 32];
	snprintf(parent, sizeof(parent), "%s", dir);
	char *slash = strrchr(parent, '/');
	if (slash == NULL)
		return -1;
	snprintf(slash, sizeof(parent) - (size_t)(slash - parent), "/%s", file);
	if (read_small(parent, val, sizeof(val)) <= 0)
		return -1;
	return write_str(path, val);
}

// make_leaf makes h's directory and those above it that are missing;
// -1 if the leaf exists already or anything fails.
static int make_leaf(struct hier *h)
{
	char path[CG_PATH];
	snprintf(path, sizeof(path), "%.4351s", h->dir);
	// The mount point ends at the third slash after /sys/fs/cgroup/.
	char *p = path + strlen(CG_MOUNTS);
	p = strchr(p, '/');
	while (p != NULL) {
		char *next = strchr(p + 1, '/');
		if (next != NULL)
			*next = '\0';
		int leaf = next == NULL;
		if (mkdir(path, 0755) == 0) {
			if (leaf)
				h->made = 1;
			if (h->cpuset && (copy_if_empty(path, "cpuset.cpus") < 0 || copy_if_empty(path, "cpuset.mems") < 0))
				return -1;
		} else if (errno != EEXIST || leaf) {
			return -1;
		}
		if (next != NULL)
			*next = '/';
		p = next;
	}
	return 0;
}

// valid_id is the runtime's rule for container ids (linux.CheckID): a
// letter or digit, then letters, digits and _.+-, at most 1024.
static int valid_id(const char *id)
{
	if (id == NULL || id[0] == '\0' || strlen(id) > 1024)
		return 0;
	for (const char *p = id; *p != '\0'; p++) {
		char c = *p;
		int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
		if (!alnum && (p == id || strchr("_.+-", c) == NULL))
			return 0;
	}
	return 1;
}

// berth_cgroup_inner turns an empty cgroupsPath into /berth/<id> and an absolute
// one into its clean form, as the Go side does (path.Clean); 0 on success,
// -1 for a relative path or one this file does not take.
int berth_cgroup_inner(const char *cgpath, const char *id, char *out, size_t cap)
{
	if (cgpath[0] == '\0') {
		if (!valid_id(id))
			return -1;
		return (size_t)snprintf(out, cap, "/berth/%s", id) < cap ? 0 : -1;
	}
	if (cgpath[0] != '/')
		return -1;
	for (const char *p = cgpath; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return -1; // a newline would be a line of the protocol
	size_t n = 0;
	for (const char *p = cgpath; *p != '\0';) {
		while (*p == '/')
			p++;
		const char *e = strchr(p, '/');
		size_t len = e != NULL ? (size_t)(e - p) : strlen(p);
		if (len == 0 || (len == 1 && p[0] == '.')) {
			p += len;
			continue;
		}
		if (len == 2 && p[0] == '.' && p[1] == '.')
			return -1;
		if (n + 1 + len + 1 > cap)
			return -1;
		out[n++] = '/';
		memcpy(out + n, p, len);
		n += len;
		p += len;
	}
	out[n] = '\0';
	return n > 0 ? 0 : -1;
}

// berth_cgroup_fork forks the init (CLONE_PARENT, as nsexec.c needs) into
// the cgroup planned in berth_prefork_cgroup or joined ("cgroup-join"),
// saying on fd what it made and whether the child is in it; with neither,
// or where that cannot be done, a plain fork. It returns what clone
// returns.
static pid_t fork_into(int fd, int ok, int v2fd);

// The directories an exec joins (below), when it was given any.
static char join_dirs[MAX_HIER][CG_PATH];
static int njoin_dirs, joined_ok, join_v2fd = -1;

pid_t berth_cgroup_fork(int fd)
{
	if (njoin_dirs > 0) {
		int v2fd = join_v2fd;
		join_v2fd = -1;
		return fork_into(fd, joined_ok, v2fd);
	}
	static struct hier h[MAX_HIER];
	int n = berth_prefork_cgroup[0] != '\0' ? hierarchies(berth_prefork_cgroup, h) : -1;
	int ok = n > 0, made = 0, v2fd = -1;
	for (int i = 0; ok && i < n; i++) {
		if (make_leaf(&h[i]) < 0)
			ok = 0;
		made += h[i].made;
	}
	if (!ok) {
		// Nothing joined yet: take back what was made.
		for (int i = n - 1; i >= 0; i--)
			if (h[i].made)
				rmdir(h[i].dir);
		made = 0;
	}
	char line[CG_PATH + 32];
	for (int i = 0; made && i < n; i++) {
		int len = snprintf(line, sizeof(line), "cgroup-made %s\n", h[i].dir);
		if (write(fd, line, (size_t)len) != len)
			ok = 0;
	}
	for (int i = 0; ok && i < n; i++) {
		if (h[i].v2) {
			v2fd = open(h[i].dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (v2fd < 0)
				ok = 0;
			continue;
		}
		char tasks[CG_PATH + 8];
		snprintf(tasks, sizeof(tasks), "%.4351s/tasks", h[i].dir);
		if (write_str(tasks, "0") < 0)
			ok = 0; // the Go side moves the init whole
	}
	return fork_into(fd, ok, v2fd);
}

// fork_into forks with CLONE_PARENT, into the cgroup2 directory v2fd (-1:
// none) when ok, saying "cgroup-in" on fd if so; without ok, or if that
// fails, a plain fork, and the Go side moves the child. It closes v2fd.
static pid_t fork_into(int fd, int ok, int v2fd)
{
	pid_t child = -1;
	if (ok) {
		struct {
			unsigned long long flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls,
			    set_tid, set_tid_size, cgroup;
		} args;
		memset(&args, 0, sizeof(args));
		args.flags = CLONE_PARENT | (v2fd >= 0 ? CLONE_INTO_CGROUP : 0);
		// With CLONE_PARENT the child takes our exit signal (SIGCHLD:
		// whoever forked us asked for it), and clone3 refuses one given.
		args.exit_signal = 0;
		args.cgroup = v2fd >= 0 ? (unsigned long long)v2fd : 0;
		child = (pid_t)syscall(SYS_clone3, &args, sizeof(args));
		if (child < 0)
			ok = 0;
	}
	if (v2fd >= 0)
		close(v2fd);
	if (child == 0)
		return 0;
	if (!ok)
		return (pid_t)syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, 0, 0, 0);
	// Unsaid, the Go side moves the child.
	(void)!write(fd, "cgroup-in\n", 10);
	return child;
}

// Joining existing directories (an exec into a running container, the
// directories from its state, sent as "cgroup-join <dir>" lines): each v1
// one through its "tasks" while this process is single-threaded and
// before it joins any namespace (they are host paths), the cgroup2 one by
// the fork into the pid namespace. Nothing is made or removed here.

int berth_cgroup_join_add(const char *dir)
{
	if (njoin_dirs == MAX_HIER || (size_t)snprintf(join_dirs[njoin_dirs], CG_PATH, "%s", dir) >= CG_PATH)
		return -1;
	njoin_dirs++;
	return 0;
}

int berth_cgroup_join_now(void)
{
	if (njoin_dirs == 0)
		return 0;
	joined_ok = 1;
	for (int i = 0; joined_ok && i < njoin_dirs; i++) {
		const char *dir = join_dirs[i];
		struct statfs fs;
		if (strncmp(dir, CG_MOUNTS, strlen(CG_MOUNTS)) != 0 || strstr(dir, "/..") != NULL || statfs(dir, &fs) < 0) {
			joined_ok = 0;
		} else if (fs.f_type == CGROUP2_SUPER_MAGIC) {
			if (join_v2fd >= 0 || (join_v2fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
				joined_ok = 0;
		} else if (fs.f_type == CGROUP_SUPER_MAGIC) {
			char tasks[CG_PATH + 8];
			snprintf(tasks, sizeof(tasks), "%.4351s/tasks", dir);
			if (write_str(tasks, "0") < 0)
				joined_ok = 0;
		} else {
			joined_ok = 0;
		}
	}
	if (!joined_ok && join_v2fd >= 0) {
		close(join_v2fd);
		join_v2fd = -1;
	}
	return joined_ok;
}

int berth_cgroup_joining(void)
{
	return njoin_dirs > 0;
}

// berth_cgroup_unforked, for a process that does not fork, closes the
// cgroup2 directory (a host path, never to reach the container) and says
// whether it is in every directory it was to join (none of them cgroup2).
int berth_cgroup_unforked(void)
{
	int in = njoin_dirs > 0 && joined_ok && join_v2fd < 0;
	if (join_v2fd >= 0) {
		close(join_v2fd);
		join_v2fd = -1;
	}
	return in;
}
