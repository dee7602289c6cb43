/*
 * veneer attach, detach, status: clients of a mount's control socket
 * (attach and detach of the virtualization filter's ports).
 * They resolve paths here (the daemon wants absolute ones) and print what
 * the daemon answers; what attaching means is the daemon's business.
 * status --watch asks again every second; it keeps no state of its own.
 * status --prometheus only labels the daemon's samples with the mount point.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <veneer/client.h>

#include "cli/cli.h"
#include "common/textbuf.h"
#include "control/control.h"
#include "layer/http_reader.h"
#include "layer/verity.h"

static const struct option help_only[] = {
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* Sends one request and prints the daemon's error; *ret_text on success. */
static int call(const char *cmd, const char *mountpoint, const char *verb, int nargs,
		const char *const *args, char **ret_text)
{
	char err[512];
	err[0] = '\0';
	int r = control_call(mountpoint, verb, nargs, args, ret_text, err, sizeof(err));
	if (r < 0)
		fprintf(stderr, "veneer: %s: %s\n", cmd, err[0] ? err : strerror(-r));
	return r;
}

/*
 * Sends the virtualization filter's port PORT its request, the NFIELDS
 * FIELDS each ended by a NUL, and prints its refusal; *ret_text (the reply
 * as text, malloc'd) on success.
 */
static int port_call(const char *port, const char *mountpoint, int nfields,
		     const char *const *fields, char **ret_text)
{
	size_t len = 0;
	for (int i = 0; i < nfields; i++)
		len += strlen(fields[i]) + 1;
	char *msg = malloc(len), err[512] = "";
	void *reply = NULL;
	size_t reply_len = 0;
	int r = -ENOMEM;
	if (msg) {
		for (int i = 0, at = 0; i < nfields; i++)
			at += sprintf(msg + at, "%s", fields[i]) + 1;
		r = vn_client_send(mountpoint, "virtualize", port, msg, len, &reply, &reply_len,
				   err, sizeof(err));
	}
	free(msg);
	if (r == 0 && !(*ret_text = strndup(reply ? reply : "", reply_len)))
		r = -ENOMEM;
	free(reply);
	if (r < 0)
		fprintf(stderr, "veneer: %s: %s\n", port, err[0] ? err : strerror(-r));
	return r;
}

/* getopt for a command whose only option is -h; returns -1 to go on, else the exit code. */
static int parse_help(int argc, char **argv, const char *usage)
{
	int c;
	while ((c = getopt_long(argc, argv, "+h", help_only, NULL)) != -1) {
		if (c != 'h')
			return 2;
		printf("usage: %s\n", usage);
		return 0;
	}
	return -1;
}

static void strip_newline(char *s)
{
	size_t n = strlen(s);
	while (n > 0 && s[n - 1] == '\n')
		s[--n] = '\0';
}

static void attach_usage(FILE *out)
{
	fprintf(out,
		"usage: veneer attach [options] MOUNTPOINT SOURCE [PATH]\n"
		"\n"
		"Projects SOURCE (a squashfs image, a directory, or the http:// or https://\n"
		"URL of an image) at PATH (default /) of the live mount at MOUNTPOINT.  An\n"
		"image that carries a hash tree is verified against the root in its footer;\n"
		"with --digest, against that digest (as 'veneer pack' printed it), and an\n"
		"image whose tree has another root, or none, is refused.  A remote image is\n"
		"fetched lazily, in chunks kept in an on-disk cache.\n"
		"\n"
		"options:\n"
		"  -d, --digest sha256:<hex>  pin the image's hash tree root\n"
		"      --cacert FILE          CA certificates (PEM) for https instead of the\n"
		"                             system's\n"
		"      --cache-dir DIR        chunk cache (default /var/cache/veneer for root,\n"
		"                             $XDG_CACHE_HOME/veneer otherwise)\n"
		"      --cache-size SIZE      bound of the whole cache (default 4G)\n"
		"      --fetch-timeout SEC    a fetch try fails after SEC seconds (default 30;\n"
		"                             a failed fetch is tried twice more)\n"
		"  -h, --help                 this text\n");
}

int cmd_attach(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "digest", required_argument, NULL, 'd' },
		{ "cacert", required_argument, NULL, 'R' },
		{ "cache-dir", required_argument, NULL, 'R' },
		{ "cache-size", required_argument, NULL, 'R' },
		{ "fetch-timeout", required_argument, NULL, 'R' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *digest = NULL;
	struct remote_options remote = { 0 };
	bool remote_set = false;
	uint8_t pin[VERITY_DIGEST];
	int c, idx = 0;
	while ((c = getopt_long(argc, argv, "+d:h", longopts, &idx)) != -1) {
		switch (c) {
		case 'd':
			digest = optarg;
			break;
		case 'R':
			if (cli_remote_option("attach", &remote, longopts[idx].name, optarg) < 0)
				return 2;
			remote_set = true;
			break;
		case 'h':
			attach_usage(stdout);
			return 0;
		default:
			attach_usage(stderr);
			return 2;
		}
	}
	if (digest && !verity_digest_parse(digest, pin)) {
		fprintf(stderr, "veneer: attach: bad digest '%s' (want sha256: and 64 hex "
			"digits)\n", digest);
		return 2;
	}
	if (argc - optind < 2 || argc - optind > 3) {
		attach_usage(stderr);
		return 2;
	}
	const char *view = optind + 2 < argc ? argv[optind + 2] : "/";
	if (view[0] != '/') {
		fprintf(stderr, "veneer: attach: PATH must be absolute (a path in the mount's "
				"view, such as /opt/data): '%s'\n", view);
		return 2;
	}
	char mp[PATH_MAX], source[PATH_MAX];
	if (cli_resolve_mountpoint("attach", argv[optind], mp) < 0)
		return 1;
	if (http_is_url(argv[optind + 1])) {
		int n = snprintf(source, sizeof(source), "%s", argv[optind + 1]);
		if (n >= (int)sizeof(source)) {
			fprintf(stderr, "veneer: attach: URL too long\n");
			return 2;
		}
	} else if (!realpath(argv[optind + 1], source)) {
		fprintf(stderr, "veneer: attach: %s: %s\n", argv[optind + 1], strerror(errno));
		return 1;
	}
	/* the virtualization filter's port: see vz_ports_open */
	char size[32] = "", timeout[32] = "";
	if (remote.cache_size)
		snprintf(size, sizeof(size), "%llu", (unsigned long long)remote.cache_size);
	if (remote.timeout_ms)
		snprintf(timeout, sizeof(timeout), "%u", remote.timeout_ms);
	const char *args[] = { source, view, digest ? digest : "",
			       remote.cacert ? remote.cacert : "",
			       remote.cache_dir ? remote.cache_dir : "", size, timeout };
	int nargs = remote_set ? 7 : digest ? 3 : 2;
	char *id;
	if (port_call("attach", mp, nargs, args, &id) < 0)
		return 1;
	strip_newline(id);
	if (http_is_url(source))	/* shown as status shows it: without its query */
		http_url_redact(argv[optind + 1], source, sizeof(source));
	printf("attached layer %s: %s at %s\n", id, source, view);
	free(id);
	return 0;
}

int cmd_detach(int argc, char **argv)
{
	static const char usage[] = "veneer detach MOUNTPOINT PATH|LAYER_ID";
	int r = parse_help(argc, argv, usage);
	if (r >= 0)
		return r;
	if (argc - optind != 2) {
		fprintf(stderr, "usage: %s\n", usage);
		return 2;
	}
	char mp[PATH_MAX];
	if (cli_resolve_mountpoint("detach", argv[optind], mp) < 0)
		return 1;
	const char *args[] = { argv[optind + 1] };
	char *text;
	if (port_call("detach", mp, 1, args, &text) < 0)
		return 1;
	strip_newline(text);
	/* the daemon may say what it removed; otherwise echo what was asked */
	printf("detached %s\n", text[0] ? text : args[0]);
	free(text);
	return 0;
}

/* Set by SIGINT/SIGTERM while status --watch runs. */
static volatile sig_atomic_t watch_stop;

static void on_watch_signal(int sig)
{
	(void)sig;
	watch_stop = 1;
}

/* Sleeps MS milliseconds, or less when a signal asked to stop. */
static void watch_sleep(int ms)
{
	for (; ms > 0 && !watch_stop; ms -= 50) {
		struct timespec ts = { 0, (ms < 50 ? ms : 50) * 1000000L };
		nanosleep(&ts, NULL);
	}
}

/* Prints one report of a watch: JSON on one line, text after a clear screen or a blank line. */
static void watch_print(char *text, bool json, bool tty, bool first)
{
	if (json) {
		/* JSON strings hold no raw newline, so dropping them keeps the document */
		char *out = text;
		for (char *in = text; *in; in++)
			if (*in != '\n')
				*out++ = *in;
		*out = '\0';
		printf("%s\n", text);
	} else {
		if (tty)
			fputs("\033[H\033[2J", stdout);
		else if (!first)
			putchar('\n');
		fputs(text, stdout);
	}
	fflush(stdout);
}

/* status --watch: the report every second until SIGINT/SIGTERM (exit 0) or an error. */
static int status_watch(const char *mp, const char *const *args, bool json)
{
	/* one-shot: should a request hang, a second signal ends the command at once */
	struct sigaction sa = { .sa_handler = on_watch_signal, .sa_flags = SA_RESETHAND };
	sigemptyset(&sa.sa_mask);
	(void)sigaction(SIGINT, &sa, NULL);
	(void)sigaction(SIGTERM, &sa, NULL);
	bool tty = isatty(STDOUT_FILENO);
	for (bool first = true; !watch_stop; first = false) {
		char *text;
		if (call("status", mp, "status", 1, args, &text) < 0)
			return watch_stop ? 0 : 1;
		watch_print(text, json, tty, first);
		free(text);
		watch_sleep(1000);
	}
	return 0;
}

/*
 * Adds a mountpoint label to every sample of a Prometheus text, so that the
 * reports of several mounts can be collected side by side.
 */
static int label_samples(const char *text, const char *mp, char **ret_text)
{
	char *b = NULL, *label = NULL;
	size_t l = 0, c = 0, ll = 0, lc = 0;
	int e = textbuf_printf(&b, &l, &c, "%s", "") ?:
		textbuf_printf(&label, &ll, &lc, "mountpoint=") ?:
		textbuf_prom_label(&label, &ll, &lc, mp);
	for (const char *line = text; *line && e == 0;) {
		size_t n = strcspn(line, "\n");
		size_t name = strcspn(line, "{ ");
		if (line[0] == '#' || name >= n)
			e = textbuf_printf(&b, &l, &c, "%.*s\n", (int)n, line);
		else if (line[name] == '{')
			e = textbuf_printf(&b, &l, &c, "%.*s{%s,%.*s\n", (int)name, line, label,
					   (int)(n - name - 1), line + name + 1);
		else
			e = textbuf_printf(&b, &l, &c, "%.*s{%s}%.*s\n", (int)name, line, label,
					   (int)(n - name), line + name);
		line += n + (line[n] == '\n');
	}
	free(label);
	if (e) {
		free(b);
		return e;
	}
	*ret_text = b;
	return 0;
}

/* status --prometheus: the daemon's metrics, labelled with the mount point. */
static int status_prometheus(const char *mp)
{
	const char *args[] = { "prometheus" };
	char *text, *labelled = NULL;
	if (call("status", mp, "status", 1, args, &text) < 0)
		return 1;
	int r = label_samples(text, mp, &labelled);
	free(text);
	if (r < 0) {
		fprintf(stderr, "veneer: status: %s\n", strerror(-r));
		return 1;
	}
	fputs(labelled, stdout);
	free(labelled);
	return 0;
}

int cmd_status(int argc, char **argv)
{
	static const char usage[] = "veneer status [--json | --prometheus] [--watch] MOUNTPOINT";
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "prometheus", no_argument, NULL, 'p' },
		{ "watch", no_argument, NULL, 'w' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool json = false, prometheus = false, watch = false;
	int c;
	while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'p':
			prometheus = true;
			break;
		case 'w':
			watch = true;
			break;
		case 'h':
			printf("usage: %s\n", usage);
			return 0;
		default:
			return 2;
		}
	}
	if (prometheus && (json || watch)) {
		fprintf(stderr, "veneer: status: --prometheus goes with neither --json nor --watch\n");
		return 2;
	}
	if (argc - optind != 1) {
		fprintf(stderr, "usage: %s\n", usage);
		return 2;
	}
	char mp[PATH_MAX];
	if (cli_resolve_mountpoint("status", argv[optind], mp) < 0)
		return 1;
	if (prometheus)
		return status_prometheus(mp);
	const char *args[] = { json ? "json" : "text" };
	if (watch)
		return status_watch(mp, args, json);
	char *text;
	if (call("status", mp, "status", 1, args, &text) < 0)
		return 1;
	fputs(text, stdout);
	free(text);
	return 0;
}
