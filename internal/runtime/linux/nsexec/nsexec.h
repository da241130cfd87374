// Shared by the constructors of package nsexec (nsexec.c, prefork.c,
// cgroupwarm.c).
#ifndef BERTH_NSEXEC_H
#define BERTH_NSEXEC_H

// berth_nsexec_enter runs the namespace protocol of nsexec.c on the sync
// socket fd, with the config taken from config when it is not NULL.
void berth_nsexec_enter(int fd, const char *config);

// berth_prefork_is_init is set in a process that prefork.c forked to go on
// as a container's init: the other constructors leave it alone.
extern volatile int berth_prefork_is_init;

// berth_self_sealed says whether this process runs a sealed binary under
// /run/berth/exe: 1 yes, 0 no, -1 unknown (trampoline.c).
int berth_self_sealed(void);

#endif
