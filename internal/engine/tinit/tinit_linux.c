// berth-init, before the Go runtime starts (see package tinit). As the
// container's PID 1 it must catch SIGTERM from its first instruction: a
// signal that came while the Go runtime and the packages initialised met
// Go's default handler, which for a PID 1 that cannot die of the signal
// exits with status 2. Here every signal is blocked at once and read from
// a signalfd: forwarded to the command, SIGCHLD reaping orphans, until the
// command exits and berth-init exits with its status (128+n for signal n).
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

static int is_berth_init(const char *argv0)
{
	const char *base = strrchr(argv0, '/');
	return strcmp(base ? base + 1 : argv0, "berth-init") == 0;
}

__attribute__((constructor)) static void berth_init(int argc, char **argv)
{
	if (argc < 1 || argv == NULL || !is_berth_init(argv[0]))
		return;
	sigset_t all, old;
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old);
	int first = 1;
	if (first < argc && strcmp(argv[first], "--") == 0)
		first++;
	if (first >= argc) {
		fprintf(stderr, "berth-init: no command to run\n");
		_exit(127);
	}
	int sfd = signalfd(-1, &all, SFD_CLOEXEC);
	if (sfd < 0) {
		fprintf(stderr, "berth-init: signalfd: %s\n", strerror(errno));
		_exit(126);
	}
	pid_t child = fork();
	if (child < 0) {
		fprintf(stderr, "berth-init: fork: %s\n", strerror(errno));
		_exit(126);
	}
	if (child == 0) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		execvp(argv[first], argv + first);
		int e = errno;
		fprintf(stderr, "berth-init: %s: %s\n", argv[first], strerror(e));
		_exit(e == ENOENT ? 127 : 126);
	}
	for (;;) {
		struct signalfd_siginfo si;
		ssize_t n = read(sfd, &si, sizeof si);
		if (n != (ssize_t)sizeof si) {
			if (n < 0 && errno == EINTR)
				continue;
			_exit(255);
		}
		if (si.ssi_signo != SIGCHLD) {
			kill(child, (int)si.ssi_signo);
			continue;
		}
		int st;
		pid_t w;
		while ((w = waitpid(-1, &st, WNOHANG)) > 0) {
			if (w == child)
				_exit(WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st));
		}
	}
}
