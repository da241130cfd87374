// The name server's first act, before Go starts: close every descriptor
// it inherited but stdin, stdout and stderr (see ServerEnv).
#define _GNU_SOURCE
#include <stdlib.h>
#include <unistd.h>
#include <sys/syscall.h>

__attribute__((constructor)) static void berth_dns_closefds(void)
{
	if (getenv("_BERTH_DNS_SERVER"))
		syscall(SYS_close_range, 3U, ~0U, 0U);
}
