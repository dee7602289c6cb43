/*
 * veneer mount: checks the arguments, opens LOWER before anything covers
 * it, and runs the daemon, in the background unless -f (the command then
 * returns once the mount is ready).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/mount_table.h"
#include "common/log.h"
#include "common/textbuf.h"
#include "daemon/builtin_filters.h"
#include "daemon/session.h"
#include "layer/http_reader.h"
#include "frontend/uring.h"
#include "layer/verity.h"

#define MAX_LAYERS 64

enum cache_mode { CACHE_DEFAULT, CACHE_AUTO, CACHE_ALWAYS, CACHE_NEVER };
enum opens_mode { OPENS_DEFAULT, OPENS_SKIP, OPENS_SEND, OPENS_PASSTHROUGH };

struct mount_args {
	bool foreground;
	enum cache_mode cache;
	enum opens_mode opens;
	bool no_killpriv;
	bool uring;
	unsigned int threads;
	const char *filters[SESSION_MAX_FILTERS];
	unsigned int nfilters;
	char *layer_sources[MAX_LAYERS];	/* absolute */
	char *layer_paths[MAX_LAYERS];
	char *layer_digests[MAX_LAYERS];	/* "sha256:<hex>" or NULL */
	unsigned int nlayers;
	struct remote_options remote;		/* for layers at URLs */
	char *trace_file;			/* absolute */
	bool no_trace;
	char *trace_spec, *vz_spec;		/* the built-in filters (set_builtins) */
	char fuse_opts[4096];		/* options handed to libfuse */
	bool allow_other;
	bool default_permissions;
	bool user_set_flags;		/* suid/dev/exec given with -o: no inheriting from LOWER */
	const char *lower;
	const char *mountpoint;
};

void cmd_mount_usage(void)
{
	printf("usage: veneer mount [options] LOWER [MOUNTPOINT]\n"
	       "\n"
	       "Mounts LOWER at MOUNTPOINT; without MOUNTPOINT, in place over LOWER.\n"
	       "\n"
	       "  -f, --foreground        stay in the foreground (default: return once mounted)\n"
	       "  -o OPT[,OPT...]         mount options: allow_other, default_permissions, ro,\n"
	       "                          and every option below as NAME=VALUE (--no-trace:\n"
	       "                          notrace); a comma inside a value is written \\,\n"
	       "      --cache=MODE        auto: short timeouts (default with a separate MOUNTPOINT)\n"
	       "                          always: long caching (default in place)\n"
	       "                          never: names and attributes always asked again, page\n"
	       "                          cache dropped at every open\n"
	       "      --opens=MODE        skip: the kernel opens files (and, with cached listings,\n"
	       "                          directories) without asking the daemon\n"
	       "                          (default with --cache=always and default_permissions)\n"
	       "                          send: every open reaches the daemon, and so does\n"
	       "                          every read and write\n"
	       "                          passthrough: opens reach the daemon, which hands real\n"
	       "                          files to the kernel to read and write itself (needs\n"
	       "                          root and Linux 6.9; otherwise as send)\n"
	       "      --killpriv=on|off   on (default): the kernel leaves clearing setuid/setgid\n"
	       "                          on writes to the daemon and stops asking for\n"
	       "                          security.capability before each write (killpriv v2;\n"
	       "                          Linux 5.11); off: the kernel clears them itself\n"
	       "      --uring             requests come through io_uring queues, one per CPU\n"
	       "                          (FUSE over io_uring: Linux 6.14 with the fuse module's\n"
	       "                          enable_uring parameter on; refused otherwise)\n"
	       "      --threads=N         at most N threads serve requests (default 10)\n"
	       "      --filter=PATH.so[:ARGS]  load a filter (repeatable)\n"
	       "      --layer=SRC[:PATH][#sha256:HEX]\n"
	       "                          project SRC (a squashfs image or a directory) at PATH\n"
	       "                          of the view (default /; repeatable, later ones win);\n"
	       "                          #sha256:HEX pins an image's digest (as pack printed it);\n"
	       "                          SRC may be an http:// or https:// URL of an image\n"
	       "      --cacert=FILE       CA certificates (PEM) for https layers instead of the\n"
	       "                          system's\n"
	       "      --cache-dir=DIR     chunk cache of remote layers (default /var/cache/veneer\n"
	       "                          for root, $XDG_CACHE_HOME/veneer otherwise)\n"
	       "      --cache-size=SIZE   bound of that cache, all images (default 4G)\n"
	       "      --fetch-timeout=SEC a fetch of a remote layer fails after SEC seconds\n"
	       "                          (default 30): the read gets EIO\n"
	       "      --trace=FILE        record every operation that reaches the daemon as\n"
	       "                          JSON lines in FILE\n"
	       "      --no-trace          leave the trace filter out (no statistics, no\n"
	       "                          'veneer trace'; for measuring what it costs)\n"
	       "  -h, --help              this text\n");
}

static int add_fuse_opt(struct mount_args *a, const char *opt)
{
	size_t len = strlen(a->fuse_opts);
	int n = snprintf(a->fuse_opts + len, sizeof(a->fuse_opts) - len, "%s%s", len ? "," : "", opt);
	if (n < 0 || (size_t)n >= sizeof(a->fuse_opts) - len) {
		fprintf(stderr, "veneer: mount options too long\n");
		return -1;
	}
	return 0;
}

static int parse_cache(struct mount_args *a, const char *v)
{
	if (!strcmp(v, "auto"))
		a->cache = CACHE_AUTO;
	else if (!strcmp(v, "always"))
		a->cache = CACHE_ALWAYS;
	else if (!strcmp(v, "never"))
		a->cache = CACHE_NEVER;
	else {
		fprintf(stderr, "veneer: bad --cache value '%s' (auto, always or never)\n", v);
		return -1;
	}
	return 0;
}

static int parse_opens(struct mount_args *a, const char *v)
{
	if (!strcmp(v, "skip"))
		a->opens = OPENS_SKIP;
	else if (!strcmp(v, "send"))
		a->opens = OPENS_SEND;
	else if (!strcmp(v, "passthrough"))
		a->opens = OPENS_PASSTHROUGH;
	else {
		fprintf(stderr, "veneer: bad --opens value '%s' (skip, send or passthrough)\n", v);
		return -1;
	}
	return 0;
}

static int parse_killpriv(struct mount_args *a, const char *v)
{
	if (!strcmp(v, "on") || !strcmp(v, "off")) {
		a->no_killpriv = !strcmp(v, "off");
		return 0;
	}
	fprintf(stderr, "veneer: bad --killpriv value '%s' (on or off)\n", v);
	return -1;
}

static int parse_threads(struct mount_args *a, const char *v)
{
	char *end;
	errno = 0;
	unsigned long n = strtoul(v, &end, 10);
	if (errno || *end || n < 1 || n > 1024 || v[0] == '-') {
		fprintf(stderr, "veneer: bad --threads value '%s' (1 to 1024)\n", v);
		return -1;
	}
	a->threads = (unsigned int)n;
	return 0;
}

static int add_filter(struct mount_args *a, const char *spec)
{
	if (a->nfilters >= SESSION_MAX_FILTERS) {
		fprintf(stderr, "veneer: too many filters (at most %d)\n", SESSION_MAX_FILTERS);
		return -1;
	}
	a->filters[a->nfilters++] = spec;
	return 0;
}

/*
 * SRC[:PATH][#sha256:<hex>]: the source must exist now; it is named by its
 * absolute path.  The digest is checked here for its form, by the daemon
 * against the image.
 */
static int add_layer(struct mount_args *a, const char *spec)
{
	if (a->nlayers >= MAX_LAYERS) {
		fprintf(stderr, "veneer: too many layers (at most %d)\n", MAX_LAYERS);
		return -1;
	}
	char *src, *path, *digest;
	uint8_t pin[VERITY_DIGEST];
	if (builtin_layer_spec_parse(spec, &src, &path, &digest) < 0) {
		fprintf(stderr, "veneer: bad --layer '%s' (SRC[:PATH][#sha256:<hex>])\n", spec);
		return -1;
	}
	char *abs = NULL;
	if (digest && !verity_digest_parse(digest, pin))
		fprintf(stderr, "veneer: bad digest in --layer '%s' (want #sha256: and 64 hex "
			"digits)\n", spec);
	else if (http_is_url(src))
		abs = strdup(src);
	else if (!(abs = realpath(src, NULL)))
		fprintf(stderr, "veneer: layer %s: %s\n", src, strerror(errno));
	free(src);
	if (abs && (strchr(abs, '\n') || strchr(path, '\n'))) {
		/* the daemon gets the layers one a line (set_builtins) */
		fprintf(stderr, "veneer: bad --layer '%s': a newline in a path\n", spec);
		free(abs);
		abs = NULL;
	}
	if (!abs) {
		free(path);
		free(digest);
		return -1;
	}
	a->layer_sources[a->nlayers] = abs;
	a->layer_digests[a->nlayers] = digest;
	a->layer_paths[a->nlayers++] = path;
	return 0;
}

/* The trace file: its directory must exist; the file is created or appended to. */
static int set_trace_file(struct mount_args *a, const char *path)
{
	char *copy = strdup(path);
	if (!copy)
		return -1;
	char *slash = strrchr(copy, '/');
	const char *base = slash ? slash + 1 : copy;
	const char *dir = slash ? (slash == copy ? "/" : copy) : ".";
	if (slash)
		*slash = '\0';
	if (strchr(path, '\n')) {
		fprintf(stderr, "veneer: trace file %s: a newline in the path\n", path);
		free(copy);
		return -1;
	}
	char *absdir = *base ? realpath(dir, NULL) : NULL;
	if (!absdir) {
		fprintf(stderr, "veneer: trace file %s: %s\n", path,
			*base ? strerror(errno) : "names a directory");
		free(copy);
		return -1;
	}
	free(a->trace_file);
	int n = asprintf(&a->trace_file, "%s/%s", strcmp(absdir, "/") ? absdir : "", base);
	free(absdir);
	free(copy);
	if (n < 0) {
		a->trace_file = NULL;
		return -1;
	}
	return 0;
}

/* One -o option: veneer's own, or one for libfuse. */
static int parse_one_opt(struct mount_args *a, char *opt)
{
	if (!strncmp(opt, "cache=", 6))
		return parse_cache(a, opt + 6);
	if (!strncmp(opt, "opens=", 6))
		return parse_opens(a, opt + 6);
	if (!strncmp(opt, "killpriv=", 9))
		return parse_killpriv(a, opt + 9);
	if (!strncmp(opt, "threads=", 8))
		return parse_threads(a, opt + 8);
	if (!strncmp(opt, "filter=", 7))
		return add_filter(a, opt + 7);
	if (!strncmp(opt, "layer=", 6))
		return add_layer(a, opt + 6);
	if (!strncmp(opt, "trace=", 6))
		return set_trace_file(a, opt + 6);
	if (!strcmp(opt, "uring")) {
		a->uring = true;
		return 0;
	}
	char *eq = strchr(opt, '=');
	if (eq) {
		*eq = '\0';
		int r = cli_remote_option("mount", &a->remote, opt, eq + 1);
		*eq = '=';
		if (r != 0)
			return r < 0 ? -1 : 0;
	}
	if (!strcmp(opt, "notrace")) {
		a->no_trace = true;
		return 0;
	}
	if (!strcmp(opt, "allow_other")) {
		a->allow_other = true;
		return 0;
	}
	if (!strcmp(opt, "default_permissions")) {
		a->default_permissions = true;
		return 0;
	}
	static const char *const flag_opts[] = { "suid", "nosuid", "dev", "nodev", "exec", "noexec" };
	for (size_t i = 0; i < sizeof(flag_opts) / sizeof(flag_opts[0]); i++)
		if (!strcmp(opt, flag_opts[i]))
			a->user_set_flags = true;
	/* set by veneer itself, or meaningless for it */
	if (!strncmp(opt, "fsname=", 7) || !strncmp(opt, "subtype=", 8) || !strcmp(opt, "auto_unmount") ||
	    !strcmp(opt, "rw") || !strcmp(opt, "defaults") || !strcmp(opt, "_netdev") ||
	    !strcmp(opt, "nofail") || !strcmp(opt, "noauto") || !strcmp(opt, "auto") ||
	    !strncmp(opt, "x-", 2) || !strcmp(opt, "user") || !strcmp(opt, "users"))
		return 0;
	return add_fuse_opt(a, opt);
}

/*
 * The next option of an -o list: up to the next comma that no backslash
 * escapes.  The option is cut out in place; *rest moves past it.
 */
static char *next_opt(char **rest)
{
	char *opt = *rest, *p = opt;
	while (*p && *p != ',')
		p += p[0] == '\\' && p[1] ? 2 : 1;
	*rest = *p ? p + 1 : p;
	*p = '\0';
	return opt;
}

/*
 * The value of one of veneer's own options with "\," and "\\" undone, so
 * that a layer= source (a URL, say) or a path can hold a comma.  Options
 * for libfuse keep their escapes: its own parser undoes them.
 */
static void unescape(char *s)
{
	char *out = s;
	for (; *s; s++) {
		if (s[0] == '\\' && (s[1] == ',' || s[1] == '\\'))
			s++;
		*out++ = *s;
	}
	*out = '\0';
}

static int parse_opts(struct mount_args *a, const char *list)
{
	char *copy = strdup(list);
	if (!copy)
		return -1;
	int r = 0;
	for (char *rest = copy; *rest && r == 0;) {
		char *opt = next_opt(&rest);
		if (!*opt)
			continue;
		if (!strncmp(opt, "layer=", 6) || !strncmp(opt, "trace=", 6) ||
		    !strncmp(opt, "filter=", 7))
			unescape(opt);
		/* filter=PATH.so:ARGS must outlive this copy */
		if (!strncmp(opt, "filter=", 7)) {
			char *keep = strdup(opt + 7);
			r = keep ? add_filter(a, keep) : -1;
			continue;
		}
		r = parse_one_opt(a, opt);
	}
	free(copy);
	return r;
}

static int parse_args(int argc, char **argv, struct mount_args *a)
{
	static const struct option longopts[] = {
		{ "foreground", no_argument, NULL, 'f' },
		{ "cache", required_argument, NULL, 'c' },
		{ "threads", required_argument, NULL, 't' },
		{ "opens", required_argument, NULL, 'O' },
		{ "killpriv", required_argument, NULL, 'K' },
		{ "uring", no_argument, NULL, 'U' },
		{ "filter", required_argument, NULL, 'F' },
		{ "layer", required_argument, NULL, 'L' },
		{ "trace", required_argument, NULL, 'T' },
		{ "no-trace", no_argument, NULL, 'N' },
		{ "cacert", required_argument, NULL, 'R' },
		{ "cache-dir", required_argument, NULL, 'R' },
		{ "cache-size", required_argument, NULL, 'R' },
		{ "fetch-timeout", required_argument, NULL, 'R' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c, idx = 0;
	optind = 1;
	opterr = 0;	/* our own messages, in our own format */
	while ((c = getopt_long(argc, argv, ":fo:hsd", longopts, &idx)) != -1) {
		int r = 0;
		switch (c) {
		case 'R':
			if (cli_remote_option("mount", &a->remote, longopts[idx].name, optarg) < 0)
				r = -1;
			break;
		case 'f':
			a->foreground = true;
			break;
		case 'o':
			r = parse_opts(a, optarg);
			break;
		case 'c':
			r = parse_cache(a, optarg);
			break;
		case 't':
			r = parse_threads(a, optarg);
			break;
		case 'O':
			r = parse_opens(a, optarg);
			break;
		case 'K':
			r = parse_killpriv(a, optarg);
			break;
		case 'U':
			a->uring = true;
			break;
		case 'F':
			r = add_filter(a, optarg);
			break;
		case 'L':
			r = add_layer(a, optarg);
			break;
		case 'T':
			r = set_trace_file(a, optarg);
			break;
		case 'N':
			a->no_trace = true;
			break;
		case 'h':
			cmd_mount_usage();
			exit(0);
		case 's':
		case 'd':
			break;	/* single-threaded/debug flags of the FUSE helper form: ignored */
		case ':':
			fprintf(stderr, "veneer: option '%s' needs a value (see 'veneer mount --help')\n",
				argv[optind - 1]);
			return -1;
		default:
			if (optopt)
				fprintf(stderr, "veneer: unknown option '-%c' (see 'veneer mount --help')\n",
					optopt);
			else
				fprintf(stderr, "veneer: unknown option '%s' (see 'veneer mount --help')\n",
					argv[optind - 1]);
			return -1;
		}
		if (r < 0)
			return -1;
	}
	int rest = argc - optind;
	if (rest < 1 || rest > 2) {
		fprintf(stderr, "veneer: mount needs LOWER and at most one MOUNTPOINT "
				"(see 'veneer mount --help')\n");
		return -1;
	}
	a->lower = argv[optind];
	a->mountpoint = rest == 2 ? argv[optind + 1] : argv[optind];
	return 0;
}

static int check_dir(const char *what, const char *path, char resolved[PATH_MAX])
{
	struct stat st;
	if (stat(path, &st) < 0) {
		if (errno == ENOENT)
			fprintf(stderr, "veneer: %s '%s' does not exist\n", what, path);
		else
			fprintf(stderr, "veneer: cannot use %s '%s': %s\n", what, path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "veneer: %s '%s' is not a directory\n", what, path);
		return -1;
	}
	if (!realpath(path, resolved)) {
		fprintf(stderr, "veneer: cannot resolve %s '%s': %s\n", what, path, strerror(errno));
		return -1;
	}
	return 0;
}

/* PATH made absolute without resolving anything (it may be a dead mount). */
static int absolute_path(const char *path, char out[PATH_MAX])
{
	if (path[0] == '/')
		return snprintf(out, PATH_MAX, "%s", path) < PATH_MAX ? 0 : -1;
	char cwd[PATH_MAX];
	if (!getcwd(cwd, sizeof(cwd)))
		return -1;
	const char *rel = strncmp(path, "./", 2) ? path : path + 2;
	size_t len = strlen(rel);
	if (len > 1 && rel[len - 1] == '/')
		len--;
	return snprintf(out, PATH_MAX, "%s/%.*s", strcmp(cwd, "/") ? cwd : "", (int)len, rel) < PATH_MAX ? 0 : -1;
}

/* A veneer mount already at PATH: refuse a live one, clear a dead one. */
static int check_not_mounted(const char *path)
{
	if (mount_table_is_dead_veneer(path)) {
		int r = mount_table_unmount(path, true);
		if (r < 0) {
			fprintf(stderr, "veneer: '%s' holds a dead veneer mount that cannot be cleared: %s\n",
				path, strerror(-r));
			return -1;
		}
		fprintf(stderr, "veneer: cleared a dead veneer mount at '%s'\n", path);
		return 0;
	}
	char fstype[64];
	if (mount_table_fstype(path, fstype, sizeof(fstype)) && !strcmp(fstype, "fuse.veneer")) {
		fprintf(stderr, "veneer: '%s' is already a veneer mount\n", path);
		return -1;
	}
	return 0;
}

/* fsname: commas and backslashes escaped for libfuse's option parser. */
static int add_fsname(struct mount_args *a, const char *lower)
{
	char opt[PATH_MAX * 2 + 16] = "fsname=";
	size_t k = strlen(opt);
	for (const char *p = lower; *p && k + 3 < sizeof(opt); p++) {
		if (*p == ',' || *p == '\\')
			opt[k++] = '\\';
		opt[k++] = *p;
	}
	opt[k] = '\0';
	return add_fuse_opt(a, opt);
}

/* Mount flags: as root, nosuid/nodev/noexec follow the mount that holds LOWER. */
static int add_flag_opts(struct mount_args *a, const char *lower)
{
	struct statvfs sv;
	if (geteuid() != 0 || a->user_set_flags || statvfs(lower, &sv) < 0)
		return 0;
	if (!(sv.f_flag & ST_NOSUID) && add_fuse_opt(a, "suid") < 0)
		return -1;
	if (!(sv.f_flag & ST_NODEV) && add_fuse_opt(a, "dev") < 0)
		return -1;
	if ((sv.f_flag & ST_NOEXEC) && add_fuse_opt(a, "noexec") < 0)
		return -1;
	return 0;
}

static void set_cache(struct frontend_config *fc, enum cache_mode mode)
{
	switch (mode) {
	case CACHE_ALWAYS:
		*fc = (struct frontend_config){ .entry_timeout = 86400, .attr_timeout = 86400,
						.negative_timeout = 86400, .keep_cache = true,
						.cache_readdir = true };
		break;
	case CACHE_NEVER:
		*fc = (struct frontend_config){ .entry_timeout = 0 };
		break;
	default:
		*fc = (struct frontend_config){ .entry_timeout = 1, .attr_timeout = 1 };
		break;
	}
}

#define VZ_NAME "virtualize"

/* What goes before the next of the virtualization filter's arguments, LEN bytes written. */
static const char *vz_sep(size_t len)
{
	return len > strlen(VZ_NAME) ? "\n" : ":";
}

/*
 * How layers at URLs are fetched, as the virtualization filter's first
 * arguments (before the layers that use them): only the options given.
 */
static int remote_args(const struct remote_options *o, char **buf, size_t *len, size_t *cap)
{
	int r = 0;
	if (o->cacert)
		r = textbuf_printf(buf, len, cap, "%scacert=%s", vz_sep(*len), o->cacert);
	if (r == 0 && o->cache_dir)
		r = textbuf_printf(buf, len, cap, "%scache-dir=%s", vz_sep(*len),
				   o->cache_dir);
	if (r == 0 && o->cache_size)
		r = textbuf_printf(buf, len, cap, "%scache-size=%llu", vz_sep(*len),
				   (unsigned long long)o->cache_size);
	if (r == 0 && o->timeout_ms)
		r = textbuf_printf(buf, len, cap, "%sfetch-timeout-ms=%u", vz_sep(*len),
				   o->timeout_ms);
	return r < 0 ? -1 : 0;
}

/*
 * The built-in filters as the daemon registers them, each with its load
 * arguments ("NAME:KEY=VALUE" lines, common/filter_args.h) parsed by the
 * filter's own code: the trace (unless --no-trace) over the virtualization
 * filter.  The strings are A's.
 */
static int set_builtins(struct mount_args *a, struct session_config *cfg)
{
	char *trace = NULL, *vz = NULL;
	size_t tlen = 0, tcap = 0, vlen = 0, vcap = 0;
	if (!a->no_trace) {
		if (textbuf_printf(&trace, &tlen, &tcap, "trace") < 0 ||
		    (a->trace_file &&
		     textbuf_printf(&trace, &tlen, &tcap, ":file=%s", a->trace_file) < 0))
			goto fail;
		cfg->builtins[cfg->nbuiltins++] = a->trace_spec = trace;
	}
	if (textbuf_printf(&vz, &vlen, &vcap, VZ_NAME) < 0 ||
	    remote_args(&a->remote, &vz, &vlen, &vcap) < 0)
		goto fail;
	for (unsigned int i = 0; i < a->nlayers; i++)
		if (textbuf_printf(&vz, &vlen, &vcap, "%slayer=%s:%s%s%s", vz_sep(vlen),
				   a->layer_sources[i], a->layer_paths[i],
				   a->layer_digests[i] ? "#" : "",
				   a->layer_digests[i] ? a->layer_digests[i] : "") < 0)
			goto fail;
	cfg->builtins[cfg->nbuiltins++] = a->vz_spec = vz;
	return 0;
fail:
	free(trace);
	a->trace_spec = NULL;
	free(vz);
	cfg->nbuiltins = 0;
	return -1;
}

static int build_config(struct mount_args *a, const char *lower, const char *mnt,
			struct session_config *cfg)
{
	bool in_place = !strcmp(lower, mnt);
	if (in_place && geteuid() == 0)
		a->allow_other = true;
	if (a->allow_other)
		a->default_permissions = true;
	if (a->cache == CACHE_DEFAULT)
		a->cache = in_place ? CACHE_ALWAYS : CACHE_AUTO;
	if ((a->allow_other && add_fuse_opt(a, "allow_other") < 0) ||
	    (a->default_permissions && add_fuse_opt(a, "default_permissions") < 0) ||
	    add_fuse_opt(a, "subtype=veneer") < 0 ||
	    (geteuid() != 0 && add_fuse_opt(a, "auto_unmount") < 0) ||
	    add_fsname(a, lower) < 0 || add_flag_opts(a, lower) < 0)
		return -1;
	memset(cfg, 0, sizeof(*cfg));
	cfg->lower = lower;
	cfg->mountpoint = mnt;
	set_cache(&cfg->cache, a->cache);
	cfg->cache.posix_acl = a->default_permissions;
	if (a->opens == OPENS_SKIP && !a->default_permissions) {
		fprintf(stderr, "veneer: --opens=skip needs default_permissions (the kernel then "
				"checks permissions at open)\n");
		return -1;
	}
	cfg->cache.skip_opens = a->opens == OPENS_SKIP ||
				(a->opens == OPENS_DEFAULT && a->cache == CACHE_ALWAYS &&
				 a->default_permissions);
	cfg->cache.passthrough = a->opens == OPENS_PASSTHROUGH;
	cfg->cache.killpriv = !a->no_killpriv;
	if (a->uring && uring_unavailable()) {
		fprintf(stderr, "veneer: --uring: %s\n", uring_unavailable());
		return -1;
	}
	cfg->cache.uring = a->uring;
	cfg->fuse_opts = a->fuse_opts;
	cfg->max_threads = a->threads;
	memcpy(cfg->filters, a->filters, sizeof(a->filters));
	cfg->nfilters = a->nfilters;
	if (a->no_trace && a->trace_file) {
		fprintf(stderr, "veneer: --trace=FILE needs the trace filter (drop --no-trace)\n");
		return -1;
	}
	if (set_builtins(a, cfg) < 0) {
		fprintf(stderr, "veneer: out of memory\n");
		return -1;
	}
	cfg->act_as_caller = geteuid() == 0;
	cfg->watch_unmount = geteuid() == 0;
	return 0;
}

static int run_background(struct session_config *cfg)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0) {
		fprintf(stderr, "veneer: pipe: %s\n", strerror(errno));
		return 1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, "veneer: fork: %s\n", strerror(errno));
		return 1;
	}
	if (pid == 0) {
		close(p[0]);
		setsid();
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (null >= 0) {
			dup2(null, STDIN_FILENO);
			dup2(null, STDOUT_FILENO);
		}
		cfg->background = true;
		_exit(session_run(cfg, p[1]));
	}
	close(p[1]);
	close(cfg->lower_fd);
	char line[1100];
	ssize_t n = read(p[0], line, sizeof(line) - 1);
	close(p[0]);
	if (n <= 0) {
		int st;
		waitpid(pid, &st, 0);
		fprintf(stderr, "veneer: the daemon exited before the mount was ready\n");
		return 1;
	}
	line[n] = '\0';
	line[strcspn(line, "\n")] = '\0';
	if (strcmp(line, "ok")) {
		waitpid(pid, NULL, 0);
		fprintf(stderr, "veneer: %s\n", line);
		return 1;
	}
	return 0;
}

int cmd_mount(int argc, char **argv)
{
	static struct mount_args a;
	if (parse_args(argc, argv, &a) < 0)
		return 2;
	char lower[PATH_MAX], mnt[PATH_MAX], given[PATH_MAX] = "";
	/* a dead mount fails every stat with ENOTCONN: clear it before looking */
	if (absolute_path(a.mountpoint, given) == 0 && check_not_mounted(given) < 0)
		return 1;
	if (check_dir("lower directory", a.lower, lower) < 0)
		return 1;
	if (check_dir("mount point", a.mountpoint, mnt) < 0)
		return 1;
	if (strcmp(given, mnt) && check_not_mounted(mnt) < 0)
		return 1;
	if (access("/dev/fuse", F_OK) < 0) {
		fprintf(stderr, "veneer: /dev/fuse is missing (load the fuse module: 'modprobe fuse')\n");
		return 1;
	}
	if (geteuid() != 0 && access(mnt, W_OK) < 0) {
		fprintf(stderr, "veneer: not permitted to mount on '%s': no write access\n", mnt);
		return 1;
	}
	struct session_config cfg;
	if (build_config(&a, lower, mnt, &cfg) < 0)
		return 2;
	/* opened before the mount covers it: the daemon's only way to the real tree */
	cfg.lower_fd = open(lower, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (cfg.lower_fd < 0) {
		fprintf(stderr, "veneer: cannot open '%s': %s\n", lower, strerror(errno));
		return 1;
	}
	if (a.foreground)
		return session_run(&cfg, -1);
	return run_background(&cfg);
}
