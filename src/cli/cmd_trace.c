/*
 * veneer trace: a live view of the operations a mount serves, read from
 * the trace filter's stream port "watch" (libveneer-client's
 * vn_client_stream), as any program could.  The filter selects and
 * formats the records (JSON lines or aligned text); this only builds the
 * query (its words, each ending in a NUL), copies the frames to stdout as
 * they come and adds up the filter's notices of records it dropped for us.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include <veneer/client.h>

static const char usage_text[] =
	"veneer trace MOUNTPOINT [--op OP,...] [--path GLOB] [--pid PID] [--errors]\n"
	"             [--slow USEC] [--json]";

static const char help_text[] =
	"\n"
	"Streams a record of every operation the mount serves until interrupted.\n"
	"\n"
	"      --op OP,...     only these operations (lookup, getattr, read, ...,\n"
	"                      fetch of a remote layer; repeatable)\n"
	"      --path GLOB     only paths matching GLOB (fnmatch; '*' matches '/' too)\n"
	"      --pid PID       only requests of this thread id\n"
	"      --errors        only operations that failed\n"
	"      --slow USEC     only operations that took at least USEC microseconds\n"
	"      --json          JSON lines instead of aligned columns\n"
	"  -h, --help          this text\n"
	"\n"
	"A watcher that reads too slowly loses records: they are counted and reported.\n";

/*
 * The first SIGINT/SIGTERM sets stop_requested: vn_client_stream() sees it
 * within 200 ms and then receives only what the daemon still held, which
 * is written out too.  Should stdout not take it (a reader that stalls),
 * a second signal, or SIGALRM GIVE_UP_S seconds after the first, gives up.
 */
#define GIVE_UP_S 5
static volatile int stop_requested;
static volatile sig_atomic_t give_up;

static void on_signal(int sig)
{
	if (sig == SIGALRM || stop_requested) {
		give_up = 1;
		return;
	}
	stop_requested = 1;
	alarm(GIVE_UP_S);
}

/* The longest line start a drop notice is recognized from. */
#define NOTICE_HEAD 64

/*
 * What the stream has shown so far.  Chunks need not end at a line end,
 * so the start of the current line is kept until its end arrives.
 */
struct trace_out {
	bool json;
	char head[NOTICE_HEAD + 1];	/* start of the current line, NUL-terminated */
	size_t headlen;
	uint64_t dropped;		/* sum of the drop notices seen */
	int write_err;			/* errno of a failed write to stdout */
};

/* "# N records dropped" or {"dropped":N}: adds N. */
static void count_notice(struct trace_out *o)
{
	const char *prefix = o->json ? "{\"dropped\":" : "# ";
	size_t n = strlen(prefix);
	if (strncmp(o->head, prefix, n) || o->head[n] < '0' || o->head[n] > '9')
		return;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(o->head + n, &end, 10);
	if (errno)
		return;
	if (o->json ? *end == '}' : !strncmp(end, " records dropped", 16))
		o->dropped += v;
}

static void scan_lines(struct trace_out *o, const char *text, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (text[i] == '\n') {
			o->head[o->headlen] = '\0';
			count_notice(o);
			o->headlen = 0;
		} else if (o->headlen < NOTICE_HEAD) {
			o->head[o->headlen++] = text[i];
		}
	}
}

/*
 * Copies a chunk to stdout with write(2), not stdio: a reader that
 * stalls blocks us in write, and giving up there must end the command
 * rather than be taken for a write error.  Returns 0, 1 (gave up) or
 * -errno.  Every chunk goes out at once: whoever reads a pipe sees the
 * records as they happen.
 */
static int write_out(const char *text, size_t len)
{
	while (len > 0) {
		if (give_up)
			return 1;
		ssize_t n = write(STDOUT_FILENO, text, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		text += n;
		len -= (size_t)n;
	}
	return 0;
}

static int on_frame(void *arg, const void *frame, size_t len)
{
	struct trace_out *o = arg;
	const char *text = frame;
	scan_lines(o, text, len);
	int r = write_out(text, len);
	if (r < 0)
		o->write_err = -r;
	return r;
}

/* A positive decimal integer no larger than MAX, or 0. */
static uint64_t parse_positive(const char *s, uint64_t max)
{
	if (s[0] < '0' || s[0] > '9')
		return 0;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return 0;
	return v;
}

/* The request's arguments, built from the options (strings are allocated). */
struct trace_args {
	const char *argv[8];
	int argc;
	char *ops;			/* "ops=A,B": --op may be given more than once */
	char *path, *pid, *slow;
	bool json, errors;
};

static void trace_args_clear(struct trace_args *a)
{
	free(a->ops);
	free(a->path);
	free(a->pid);
	free(a->slow);
}

/* *slot = KEY SEP VALUE (replacing an earlier one): -1 to go on, or 1 (out of memory). */
static int set_arg(char **slot, const char *key, const char *value, char sep)
{
	char *s;
	if (asprintf(&s, "%s%c%s", key, sep, value) < 0) {
		fprintf(stderr, "veneer: trace: %s\n", strerror(ENOMEM));
		return 1;
	}
	free(*slot);
	*slot = s;
	return -1;
}

/* Handles one option; returns -1 to go on, else the exit code. */
static int parse_option(int c, struct trace_args *a)
{
	switch (c) {
	case 'j':
		a->json = true;
		return -1;
	case 'e':
		a->errors = true;
		return -1;
	case 'o':
		if (!optarg[0]) {
			fprintf(stderr, "veneer: trace: empty --op\n");
			return 2;
		}
		/* more --op options add to the list: "ops=A" then "ops=A,B" */
		return set_arg(&a->ops, a->ops ? a->ops : "ops", optarg, a->ops ? ',' : '=');
	case 'p':
		return set_arg(&a->path, "path", optarg, '=');
	case 'P':
		if (!parse_positive(optarg, INT_MAX)) {
			fprintf(stderr, "veneer: trace: bad --pid '%s'\n", optarg);
			return 2;
		}
		return set_arg(&a->pid, "pid", optarg, '=');
	case 's':
		if (!parse_positive(optarg, UINT64_MAX)) {
			fprintf(stderr, "veneer: trace: bad --slow '%s'\n", optarg);
			return 2;
		}
		return set_arg(&a->slow, "slow", optarg, '=');
	case 'h':
		printf("usage: %s\n%s", usage_text, help_text);
		return 0;
	default:
		return 2;
	}
}

static int parse_args(int argc, char **argv, struct trace_args *a)
{
	static const struct option longopts[] = {
		{ "op", required_argument, NULL, 'o' },
		{ "path", required_argument, NULL, 'p' },
		{ "pid", required_argument, NULL, 'P' },
		{ "errors", no_argument, NULL, 'e' },
		{ "slow", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	/* no '+': options may follow MOUNTPOINT, as the synopsis has them */
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		int r = parse_option(c, a);
		if (r >= 0)
			return r;
	}
	if (argc - optind != 1) {
		fprintf(stderr, "usage: %s\n", usage_text);
		return 2;
	}
	a->argv[a->argc++] = a->json ? "json" : "text";
	if (a->ops)
		a->argv[a->argc++] = a->ops;
	if (a->path)
		a->argv[a->argc++] = a->path;
	if (a->pid)
		a->argv[a->argc++] = a->pid;
	if (a->errors)
		a->argv[a->argc++] = "errors";
	if (a->slow)
		a->argv[a->argc++] = a->slow;
	return -1;
}

/* The trace filter's stream port (its protocol: src/filters/trace/trace_port.c). */
#define TRACE_FILTER "trace"
#define TRACE_PORT "watch"

/* The query as the port takes it: the words, each ending in a NUL. */
static int query_words(const struct trace_args *a, char **ret, size_t *ret_len)
{
	size_t n = 0;
	for (int i = 0; i < a->argc; i++)
		n += strlen(a->argv[i]) + 1;
	char *q = malloc(n ? n : 1);
	if (!q)
		return -ENOMEM;
	size_t at = 0;
	for (int i = 0; i < a->argc; i++) {
		size_t w = strlen(a->argv[i]) + 1;
		memcpy(q + at, a->argv[i], w);
		at += w;
	}
	*ret = q;
	*ret_len = n;
	return 0;
}

static void catch_signals(void)
{
	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	(void)sigaction(SIGINT, &sa, NULL);
	(void)sigaction(SIGTERM, &sa, NULL);
	(void)sigaction(SIGALRM, &sa, NULL);
}

int cmd_trace(int argc, char **argv)
{
	struct trace_args a = { 0 };
	int r = parse_args(argc, argv, &a);
	if (r >= 0)
		goto out;
	char mp[PATH_MAX];
	if (cli_resolve_mountpoint("trace", argv[optind], mp) < 0) {
		r = 1;
		goto out;
	}
	char *query = NULL;
	size_t qlen = 0;
	if (query_words(&a, &query, &qlen) < 0) {
		fprintf(stderr, "veneer: trace: %s\n", strerror(ENOMEM));
		r = 1;
		goto out;
	}
	catch_signals();
	struct trace_out o = { .json = a.json };
	char err[512] = "";
	r = vn_client_stream(mp, TRACE_FILTER, TRACE_PORT, query, qlen, on_frame, &o,
			     &stop_requested, err, sizeof(err));
	free(query);
	if (r == -ENOENT && !strncmp(err, "no port ", 8))
		snprintf(err, sizeof(err), "this mount runs without the trace filter (--no-trace)");
	if (o.write_err)
		fprintf(stderr, "veneer: trace: cannot write the records: %s\n",
			strerror(o.write_err));
	else if (r < 0)
		fprintf(stderr, "veneer: trace: %s\n", err[0] ? err : strerror(-r));
	if (o.dropped)
		fprintf(stderr, "veneer: trace: %" PRIu64 " records dropped (the watcher was too slow)\n",
			o.dropped);
	/* 1: gave up writing after a stop signal, an ending like any other */
	r = r < 0 ? 1 : 0;
out:
	trace_args_clear(&a);
	return r;
}
