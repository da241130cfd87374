//go:build linux && cgo

// A signal handler of plain C that writes the number of each signal it
// catches to a pipe (see sigrelay_linux.go for why). It is installed with
// SA_ONSTACK, as Go requires of every handler not its own, so it runs on
// the thread's signal stack; it only calls write(2), which is
// async-signal-safe, and keeps errno.
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#define RELAY_NSIG 65

static volatile int relay_fd = -1;
// relay_gen names the running relay; each write carries it, so the reader
// can drop what a relay that has stopped caught.
static volatile unsigned char relay_gen;
static struct sigaction relay_saved[RELAY_NSIG];
static unsigned char relay_have[RELAY_NSIG];

static void relay_handler(int sig, siginfo_t *info, void *uctx)
{
	(void)info;
	(void)uctx;
	int saved_errno = errno;
	unsigned char b[2] = {(unsigned char)sig, relay_gen};
	// Two bytes are written at once (less than PIPE_BUF). The pipe is
	// non-blocking: with it full, a signal is dropped, as os/signal
	// drops one when its channel is full.
	ssize_t n = write(relay_fd, b, sizeof(b));
	(void)n;
	errno = saved_errno;
}

// berth_sigrelay_start catches each of sigs[0..n) and writes its number and
// gen to fd, keeping the handler each had, for berth_sigrelay_stop. It returns 0,
// or -errno of the first sigaction that failed (those before it stay
// caught until stop).
int berth_sigrelay_start(int fd, unsigned char gen, const int *sigs, int n)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = relay_handler;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
	sigfillset(&sa.sa_mask);
	relay_fd = fd;
	relay_gen = gen;
	for (int i = 0; i < n; i++) {
		int sig = sigs[i];
		if (sig <= 0 || sig >= RELAY_NSIG)
			return -EINVAL;
		if (sigaction(sig, &sa, &relay_saved[sig]) != 0)
			return -errno;
		relay_have[sig] = 1;
	}
	return 0;
}

// berth_sigrelay_stop gives every caught signal its earlier handler back
// (the Go runtime's).
void berth_sigrelay_stop(void)
{
	for (int sig = 1; sig < RELAY_NSIG; sig++) {
		if (relay_have[sig]) {
			sigaction(sig, &relay_saved[sig], NULL);
			relay_have[sig] = 0;
		}
	}
}
