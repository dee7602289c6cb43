/*
 * A policy program for a filter that asks about opens and execs (the
 * scanner pattern; examples/scanner.c is such a filter):
 *
 *   policy [--peek] [--slow MS] MOUNTPOINT FILTER PORT [[exec:]DENY_GLOB...]
 *
 * connects as the client of FILTER's PORT and answers each question
 * "open PATH" or "exec PATH" with "deny" when PATH matches a DENY_GLOB
 * (fnmatch; one written exec:GLOB denies only execs; one written
 * head:GLOB matches the file's first bytes, which the filter may send
 * after the path and a NUL, instead), else "allow", printing one line per
 * decision ("deny exec /bin/x").  --peek first reads the file
 * through the mount, as a scanner reads what it judges: the daemon does
 * not ask about this program's own opens, so that cannot deadlock.
 * --slow waits MS milliseconds before each answer.  Runs until SIGINT or
 * SIGTERM, or until the filter goes away.  Build it against the installed
 * package:
 *
 *   cc -o policy policy.c $(pkg-config --cflags --libs veneer-client)
 */
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <veneer/client.h>

struct policy {
	const char *mountpoint;
	char **deny;
	int ndeny;
	bool peek;
	int slow_ms;
};

static volatile int stop;

static void on_signal(int sig)
{
	stop = 1;
}

/* Reads the first bytes of PATH (relative to the mount) through the mount. */
static void peek(const struct policy *p, const char *path)
{
	char full[PATH_MAX * 2], buf[64];
	snprintf(full, sizeof(full), "%s%s", p->mountpoint, path);
	int fd = open(full, O_RDONLY | O_NONBLOCK);
	if (fd >= 0) {
		(void)!read(fd, buf, sizeof(buf));
		close(fd);
	}
}

static int answer(void *arg, const void *msg, size_t len, void **ret_reply, size_t *ret_len)
{
	const struct policy *p = arg;
	char question[PATH_MAX + 8 + 128];
	if (len >= sizeof(question) || len < 5 ||
	    (memcmp(msg, "open ", 5) && memcmp(msg, "exec ", 5)))
		return -1;	/* not ours to judge: the filter's default applies */
	memcpy(question, msg, len);
	question[len] = '\0';
	bool exec = question[0] == 'e';
	question[4] = '\0';
	const char *path = question + 5;
	/* the content's start, if sent: after the path's NUL, as text up to a NUL of its own */
	size_t plen = strlen(path);
	const char *head = 5 + plen < len ? path + plen + 1 : NULL;
	if (p->peek)
		peek(p, path);
	if (p->slow_ms) {
		struct timespec ts = { p->slow_ms / 1000, (p->slow_ms % 1000) * 1000000L };
		nanosleep(&ts, NULL);
	}
	bool deny = false;
	for (int i = 0; i < p->ndeny && !deny; i++) {
		const char *glob = p->deny[i];
		if (!strncmp(glob, "head:", 5)) {
			deny = head && fnmatch(glob + 5, head, 0) == 0;
			continue;
		}
		bool exec_only = !strncmp(glob, "exec:", 5);
		if (exec_only && !exec)
			continue;
		deny = fnmatch(exec_only ? glob + 5 : glob, path, 0) == 0;
	}
	printf("%s %s %s\n", deny ? "deny" : "allow", question, path);
	fflush(stdout);
	*ret_reply = strdup(deny ? "deny" : "allow");
	*ret_len = *ret_reply ? strlen(*ret_reply) : 0;
	return *ret_reply ? 0 : -1;
}

int main(int argc, char **argv)
{
	struct policy p = { 0 };
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--peek"))
			p.peek = true;
		else if (!strcmp(argv[i], "--slow") && i + 1 < argc)
			p.slow_ms = atoi(argv[++i]);
		else
			break;
	}
	if (argc - i < 3) {
		fprintf(stderr, "usage: policy [--peek] [--slow MS] MOUNTPOINT FILTER PORT "
				"[[exec:]DENY_GLOB...]\n");
		return 2;
	}
	p.mountpoint = argv[i];
	p.deny = argv + i + 3;
	p.ndeny = argc - i - 3;
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	char err[512];
	int r = vn_client_listen(p.mountpoint, argv[i + 1], argv[i + 2], answer, &p, &stop, err,
				 sizeof(err));
	if (r < 0) {
		fprintf(stderr, "policy: %s\n", err);
		return 1;
	}
	return 0;
}
