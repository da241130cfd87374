// Early start of the kernel wait that a container's first cgroup move pays.
//
// Moving a process between cgroups (a write to cgroup.procs) takes the
// kernel's cgroup_threadgroup_rwsem for writing. It is a per-cpu rwsem
// (rcu_sync): a writer that finds it idle waits for an RCU grace period
// (~10 ms, sometimes 20, on the development host), holding cgroup_mutex,
// so every mkdir of a cgroup waits too. The rwsem goes idle again one grace
// period after its last writer, unless another writer came meanwhile.
// `create` and `run` move the container's init into its cgroup ~15 ms after
// their exec. So a thread started here, at exec, by an ELF constructor,
// writes "0" (ourselves) to our own cgroup.procs, which takes the lock
// without moving anything: it pays the grace period while the Go runtime
// starts and the bundle is read. It then writes again every
// WARM_INTERVAL_MS, keeping the rwsem from going idle, until the runtime
// has moved the init (berth_cgroup_warm_stop) or WARM_MAX_MS have passed.
// Each later write holds the lock for microseconds. (The Go side used to
// write once from main, ~7 ms after exec; see docs/architecture.md,
// "Start-up cost".)
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nsexec.h"

#define WARM_INTERVAL_MS 2
#define WARM_MAX_MS 200

// berth_cgroup_warm_stop, set by the Go side, ends the warm-up: the
// container's init is in its cgroup.
volatile int berth_cgroup_warm_stop;

// lists_self says whether the cgroup.procs file lists this process. A
// file that does not is not our cgroup's, whatever its path (in a cgroup
// namespace of our own with the host's hierarchy mounted, /proc/self/cgroup
// says "/" and the mount's root is the host's): writing "0" there would
// move us.
static int lists_self(const char *procs)
{
	int fd = open(procs, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	long self = (long)getpid(), cur = 0;
	int digits = 0, found = 0;
	char buf[4096];
	ssize_t n;
	while (!found && (n = read(fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] >= '0' && buf[i] <= '9') {
				cur = cur * 10 + (buf[i] - '0');
				digits++;
			} else {
				if (digits > 0 && cur == self)
					found = 1;
				cur = 0;
				digits = 0;
			}
		}
	}
	if (digits > 0 && cur == self)
		found = 1;
	close(fd);
	return found;
}

// own_procs finds the cgroup.procs of our cgroup in one hierarchy that
// every host has (pids or freezer on v1, the v2 one on unified or hybrid
// hosts) that we can write and that lists us, and returns it open, or -1.
static int own_procs(void)
{
	char buf[8192];
	int fd = open("/proc/self/cgroup", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	char *save = NULL;
	for (char *line = strtok_r(buf, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		// "N:controllers:/path"
		char *ctl = strchr(line, ':');
		if (ctl == NULL)
			continue;
		ctl++;
		char *path = strchr(ctl, ':');
		if (path == NULL)
			continue;
		*path++ = '\0';
		if (strstr(path, "..") != NULL)
			continue;
		char procs[4096];
		if (ctl[0] == '\0') {
			snprintf(procs, sizeof(procs), "/sys/fs/cgroup/unified%s/cgroup.procs", path);
			if (access(procs, F_OK) != 0)
				snprintf(procs, sizeof(procs), "/sys/fs/cgroup%s/cgroup.procs", path);
		} else if (strcmp(ctl, "pids") == 0 || strcmp(ctl, "freezer") == 0) {
			snprintf(procs, sizeof(procs), "/sys/fs/cgroup/%s%s/cgroup.procs", ctl, path);
		} else {
			continue;
		}
		if (!lists_self(procs))
			continue;
		fd = open(procs, O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (write(fd, "0", 1) == 1)
			return fd;
		close(fd);
	}
	return -1;
}

// keep_warm takes the lock at once and then every WARM_INTERVAL_MS until
// stopped; errors mean only that there is no head start.
static void *keep_warm(void *unused)
{
	(void)unused;
	int fd = own_procs();
	if (fd < 0)
		return NULL;
	struct timespec interval = {0, WARM_INTERVAL_MS * 1000000L};
	for (int waited = 0; waited < WARM_MAX_MS && !__atomic_load_n(&berth_cgroup_warm_stop, __ATOMIC_ACQUIRE); waited += WARM_INTERVAL_MS) {
		nanosleep(&interval, NULL);
		if (write(fd, "0", 1) != 1)
			break;
	}
	close(fd);
	return NULL;
}

static int is_arg(int argc, char **argv, const char *want)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], want) == 0)
			return 1;
	return 0;
}

static const char *base(const char *p)
{
	const char *s = strrchr(p, '/');
	return s != NULL ? s + 1 : p;
}

// glibc passes argc, argv and envp to constructors.
__attribute__((constructor)) static void berth_cgroup_warm(int argc, char **argv, char **envp)
{
	(void)envp;
	// Only a command that will create a container (the runtime's or the
	// engine's create and run), never one of the processes the binary
	// also is: a container's init or exec (_BERTH_NSEXEC, or forked ahead by prefork.c), a container
	// monitor, the guest agent, the --init of a container, a VM's shim.
	// Nor a create whose init prefork.c forks into its cgroup without a
	// move (cgroupfork.c): a warm-up would hold cgroup_mutex against it.
	if (argc < 2 || argv == NULL || berth_prefork_is_init || berth_prefork_cgroup_planned || getenv("_BERTH_NSEXEC") != NULL ||
	    getenv("_BERTH_MONITOR") != NULL || getenv("BERTH_AGENT") != NULL)
		return;
	const char *name = base(argv[0]);
	if (strcmp(name, "berth-init") == 0 || strcmp(name, "berth-vmm") == 0)
		return;
	if (!is_arg(argc, argv, "create") && !is_arg(argc, argv, "run"))
		return;
	// The thread blocks every signal: the Go runtime's handlers expect
	// signals on threads it knows, and this one only waits in the kernel.
	sigset_t all, old;
	sigfillset(&all);
	pthread_attr_t attr;
	if (pthread_attr_init(&attr) != 0)
		return;
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	pthread_t t;
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_create(&t, &attr, keep_warm, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
}
