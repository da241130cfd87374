// Shared by the constructors of package nsexec (nsexec.c, prefork.c,
// cgroupwarm.c).
#ifndef BERTH_NSEXEC_H
#define BERTH_NSEXEC_H

#include <stddef.h>
#include <sys/types.h>

// berth_nsexec_enter runs the namespace protocol of nsexec.c on the sync
// socket fd, with the config taken from config when it is not NULL.
void berth_nsexec_enter(int fd, const char *config);

// berth_prefork_is_init is set in a process that prefork.c forked to go on
// as a container's init: the other constructors leave it alone.
extern volatile int berth_prefork_is_init;

// berth_self_sealed says whether this process runs a sealed binary under
// /run/berth/exe: 1 yes, 0 no, -1 unknown (trampoline.c).
int berth_self_sealed(void);

// berth_prefork_cgroup is, in prefork.c's intermediate or an exec'd init's
// (nsexec.c's "cgroup-make"), the container's cgroup below each mount root
// ("" for none). berth_cgroup_fork is
// nsexec.c's fork into a pid namespace (CLONE_PARENT): into that cgroup,
// or the "cgroup-join" ones, where it was asked and could; else plain.
extern char berth_prefork_cgroup[4096];
extern int berth_prefork_cgroup_planned;
pid_t berth_cgroup_fork(int fd);

// An exec's cgroup, joined without a migration (cgroupfork.c): add each
// "cgroup-join" directory, join them before the namespaces, and fork
// through berth_cgroup_fork (berth_cgroup_joining) or, without a fork,
// say "cgroup-in" if berth_cgroup_unforked (which closes what it opened).
int berth_cgroup_join_add(const char *dir);
int berth_cgroup_join_now(void);
int berth_cgroup_joining(void);
int berth_cgroup_unforked(void);

// berth_cgroup_inner is the cgroup below each mount root for a
// linux.cgroupsPath and container id, as the Go side computes it for the
// cgroupfs driver; -1 for one cgroupfork.c does not take (relative).
int berth_cgroup_inner(const char *cgpath, const char *id, char *out, size_t cap);

#endif
