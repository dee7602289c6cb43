/*
 * veneer filter list|send|stream|load|unload: the filter stack of a live
 * mount, messages to its filters' ports, their stream ports, and changes
 * of the stack.  The daemon builds the report and does the loading; a
 * message goes through libveneer-client's vn_client_send, a stream through
 * vn_client_stream, as any user-mode program's would.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <veneer/client.h>

#include "cli/cli.h"
#include "control/control.h"

static const char usage_text[] =
	"veneer filter list [--json] MOUNTPOINT\n"
	"       veneer filter send MOUNTPOINT FILTER[/PORT] MESSAGE...\n"
	"       veneer filter stream MOUNTPOINT FILTER[/PORT] [REQUEST...]\n"
	"       veneer filter load MOUNTPOINT PATH.so[:ARGS]\n"
	"       veneer filter unload [--force] MOUNTPOINT NAME";

static const char help_text[] =
	"\n"
	"  list    the mount's filters, highest altitude first: name, altitude, flags,\n"
	"          operations handled, ports, state and origin (--json: as JSON)\n"
	"  send    sends MESSAGE (the words joined by spaces) to the filter's port\n"
	"          (without /PORT: the first port it opened) and prints the reply\n"
	"  stream  connects to the filter's stream port with REQUEST (the words\n"
	"          joined by spaces) and copies the frames to standard output until\n"
	"          the filter ends the stream or SIGINT/SIGTERM\n"
	"  load    loads a filter into the live mount, for operations that start\n"
	"          afterwards (it runs as the daemon: the mount's owner or root only)\n"
	"  unload  waits for the filter's operations, asks its teardown (--force:\n"
	"          unload even if it refuses) and removes it\n";

static int usage_error(void)
{
	fprintf(stderr, "usage: %s\n", usage_text);
	return 2;
}

/* One request; prints the daemon's error. 0 with *ret_text, or 1. */
static int call(const char *mp, const char *verb, int nargs, const char *const *args,
		char **ret_text)
{
	char err[512] = "";
	int r = control_call(mp, verb, nargs, args, ret_text, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "veneer: filter: %s\n", err[0] ? err : strerror(-r));
		return 1;
	}
	return 0;
}

static int filter_list(int argc, char **argv)
{
	bool json = false;
	int i = 1;
	if (i < argc && !strcmp(argv[i], "--json")) {
		json = true;
		i++;
	}
	if (argc - i != 1)
		return usage_error();
	char mp[PATH_MAX];
	if (cli_resolve_mountpoint("filter", argv[i], mp) < 0)
		return 1;
	const char *args[] = { json ? "json" : "text" };
	char *text;
	if (call(mp, "filters", 1, args, &text))
		return 1;
	fputs(text, stdout);
	free(text);
	return 0;
}

/* The words of MESSAGE joined by single spaces, malloc'd. */
static char *join_words(int argc, char **argv, size_t *ret_len)
{
	size_t len = 0;
	for (int i = 0; i < argc; i++)
		len += strlen(argv[i]) + 1;
	char *s = malloc(len);
	if (!s)
		return NULL;
	char *p = s;
	for (int i = 0; i < argc; i++)
		p += sprintf(p, "%s%s", i ? " " : "", argv[i]);
	*ret_len = (size_t)(p - s);
	return s;
}

/*
 * MOUNTPOINT FILTER[/PORT] WORDS... of send and stream: the mount point
 * resolved, FILTER split at its '/' in place, the words joined (empty
 * without any: msg is malloc'd).  0, or -1 after a message.
 */
static int port_target(int argc, char **argv, char *mp, char **filter, char **port, char **msg,
		       size_t *len)
{
	if (cli_resolve_mountpoint("filter", argv[1], mp) < 0)
		return -1;
	*filter = argv[2];
	*port = strchr(*filter, '/');
	if (*port)
		*(*port)++ = '\0';
	*len = 0;
	*msg = argc > 3 ? join_words(argc - 3, argv + 3, len) : strdup("");
	if (!*msg) {
		fprintf(stderr, "veneer: filter: out of memory\n");
		return -1;
	}
	return 0;
}

static int filter_send(int argc, char **argv)
{
	if (argc < 4)
		return usage_error();
	char mp[PATH_MAX], err[512] = "", *filter, *port, *msg;
	size_t len;
	if (port_target(argc, argv, mp, &filter, &port, &msg, &len) < 0)
		return 1;
	void *reply;
	size_t reply_len;
	int r = vn_client_send(mp, filter, port, msg, len, &reply, &reply_len, err, sizeof(err));
	free(msg);
	if (r < 0) {
		fprintf(stderr, "veneer: filter: %s\n", err[0] ? err : strerror(-r));
		return 1;
	}
	fwrite(reply, 1, reply_len, stdout);
	if (reply_len && ((char *)reply)[reply_len - 1] != '\n')
		putchar('\n');
	free(reply);
	return 0;
}

static volatile int stream_stop;

static void on_stop(int sig)
{
	stream_stop = 1;
}

/* A frame as it came, at once: whoever reads a pipe sees it. */
static int write_frame(void *arg, const void *frame, size_t len)
{
	const char *p = frame;
	while (len > 0) {
		ssize_t n = write(STDOUT_FILENO, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*(int *)arg = errno;
			return 1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int filter_stream(int argc, char **argv)
{
	if (argc < 3)
		return usage_error();
	char mp[PATH_MAX], err[512] = "", *filter, *port, *msg;
	size_t len;
	if (port_target(argc, argv, mp, &filter, &port, &msg, &len) < 0)
		return 1;
	struct sigaction sa = { .sa_handler = on_stop };
	sigemptyset(&sa.sa_mask);
	(void)sigaction(SIGINT, &sa, NULL);
	(void)sigaction(SIGTERM, &sa, NULL);
	int write_err = 0;
	int r = vn_client_stream(mp, filter, port, msg, len, write_frame, &write_err,
				 &stream_stop, err, sizeof(err));
	free(msg);
	if (write_err) {
		fprintf(stderr, "veneer: filter: cannot write the frames: %s\n",
			strerror(write_err));
		return 1;
	}
	if (r < 0) {
		fprintf(stderr, "veneer: filter: %s\n", err[0] ? err : strerror(-r));
		return 1;
	}
	return 0;
}

/* PATH.so[:ARGS] with PATH made absolute (the daemon's working directory is not ours). */
static char *absolute_spec(const char *spec)
{
	char *path = strdup(spec), real[PATH_MAX], *out = NULL;
	if (!path)
		return NULL;
	char *so = strstr(path, ".so:");
	const char *args = so ? spec + (so - path) + 3 : "";
	if (so)
		so[3] = '\0';
	if (!realpath(path, real))
		fprintf(stderr, "veneer: filter: cannot load '%s': %s\n", path, strerror(errno));
	else if (asprintf(&out, "%s%s", real, args) < 0)
		out = NULL;
	free(path);
	return out;
}

static int filter_load(int argc, char **argv)
{
	if (argc != 3)
		return usage_error();
	char mp[PATH_MAX];
	if (cli_resolve_mountpoint("filter", argv[1], mp) < 0)
		return 1;
	char *spec = absolute_spec(argv[2]), *name;
	if (!spec)
		return 1;
	const char *args[] = { spec };
	int r = call(mp, "load", 1, args, &name);
	if (r == 0) {
		printf("loaded filter %s from %s\n", name, spec);
		free(name);
	}
	free(spec);
	return r;
}

static int filter_unload(int argc, char **argv)
{
	bool force = false;
	const char *pos[2];
	int npos = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--force"))
			force = true;
		else if (npos < 2)
			pos[npos++] = argv[i];
		else
			return usage_error();
	}
	if (npos != 2)
		return usage_error();
	char mp[PATH_MAX];
	if (cli_resolve_mountpoint("filter", pos[0], mp) < 0)
		return 1;
	const char *args[] = { pos[1], force ? "force" : "wait" };
	char *text;
	if (call(mp, "unload", 2, args, &text))
		return 1;
	free(text);
	printf("unloaded filter %s\n", pos[1]);
	return 0;
}

int cmd_filter(int argc, char **argv)
{
	if (argc < 2)
		return usage_error();
	const char *sub = argv[1];
	if (!strcmp(sub, "-h") || !strcmp(sub, "--help")) {
		printf("usage: %s\n%s", usage_text, help_text);
		return 0;
	}
	if (!strcmp(sub, "list"))
		return filter_list(argc - 1, argv + 1);
	if (!strcmp(sub, "send"))
		return filter_send(argc - 1, argv + 1);
	if (!strcmp(sub, "stream"))
		return filter_stream(argc - 1, argv + 1);
	if (!strcmp(sub, "load"))
		return filter_load(argc - 1, argv + 1);
	if (!strcmp(sub, "unload"))
		return filter_unload(argc - 1, argv + 1);
	fprintf(stderr, "veneer: filter: unknown subcommand '%s'\n", sub);
	return usage_error();
}
