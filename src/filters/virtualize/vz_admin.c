/*
 * Attach, detach and status: the virtualization filter as the control
 * socket and --layer drive it.  Attach and detach run one at a time
 * (admin_lock); each publishes a new layer set, then queues the
 * invalidations of every kernel cache entry it changed and waits until
 * they were sent, so the command returns only once the view shows the
 * change.  Status works on a reference to the current set, with no lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/filter_args.h"
#include "common/log.h"
#include "common/textbuf.h"
#include "filters/virtualize/virtualize.h"
#include "filters/virtualize/vz_internal.h"
#include "layer/verity.h"

static pthread_mutex_t admin_lock = PTHREAD_MUTEX_INITIALIZER;
static char *mount_point;
static int lower_root = -1;

void vz_admin_init(const char *mountpoint, int lower_fd)
{
	free(mount_point);
	mount_point = strdup(mountpoint);
	lower_root = lower_fd;
}

/* Opens a path of the real tree without following any symlink or leaving it. */
static int open_beneath(const char *rel, int flags)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC),
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	long fd = syscall(SYS_openat2, lower_root, *rel ? rel : ".", &how, sizeof(how));
	return fd < 0 ? -errno : (int)fd;
}

/*
 * Opens SOURCE_PATH as a layer source.  A path under the mount point is
 * reached through the lower: the daemon never goes through its own mount.
 */
static int open_source(const char *source_path, const uint8_t *digest, struct source **ret,
		       char *err, size_t errlen)
{
	const char *rel = mount_point ? vz_path_under(source_path, mount_point,
						      strlen(mount_point)) : NULL;
	if (!rel)
		return source_open_pinned(AT_FDCWD, source_path, source_path, digest, ret, err,
					  errlen);
	int fd = open_beneath(rel, O_PATH);
	if (fd < 0) {
		snprintf(err, errlen, "%s (looked up in the real tree under the mount point)",
			 strerror(-fd));
		return fd;
	}
	struct stat st;
	int r = fstat(fd, &st) < 0 ? -errno : 0;
	if (r == 0 && S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "a directory inside the mount itself cannot be a layer "
			 "(use an image, or a directory outside the mount point)");
		r = -ELOOP;
	}
	if (r == 0) {
		char proc[64];
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
		r = source_open_pinned(AT_FDCWD, proc, source_path, digest, ret, err, errlen);
	}
	close(fd);
	return r;
}

/* ---- invalidation ---- */

struct dir_ref {
	struct vn_node *node;		/* used as an id only */
	char *path;
};

struct dir_refs {
	struct dir_ref *v;
	size_t n, cap;
};

static void collect_dir(void *arg, struct vn_node *node, const char *path)
{
	struct dir_refs *d = arg;
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 64;
		struct dir_ref *v = realloc(d->v, cap * sizeof(*v));
		if (!v)
			return;
		d->v = v;
		d->cap = cap;
	}
	char *copy = strdup(path);
	if (copy)
		d->v[d->n++] = (struct dir_ref){ node, copy };
}

static int invalidate_name(void *arg, const char *name, uint64_t ino, mode_t type)
{
	vn_invalidate_entry(arg, name);
	return 0;
}

/* The kernel caches in directory D (at PATH) that layer L's presence changes. */
static void invalidate_dir(struct layer *l, struct vn_node *d, const char *path)
{
	const char *rel = vz_path_under(path, l->path, l->path_len);
	size_t len;
	const char *next = rel ? NULL : vz_path_next_component(path, l->path, &len);
	if (rel) {
		uint64_t ref;
		struct stat st;
		if (vz_layer_walk(l, rel, &ref, &st) < 0 || !S_ISDIR(st.st_mode))
			return;
		source_readdir(l->src, ref, rel, invalidate_name, d);
	} else if (next) {
		char name[NAME_MAX + 1];
		memcpy(name, next, len);
		name[len] = '\0';
		vn_invalidate_entry(d, name);
	} else {
		return;
	}
	vn_invalidate_node(d);	/* its cached listing and attributes */
}

static void invalidate_layer(struct layer *l)
{
	struct dir_refs dirs = { 0 };
	vz_for_each_dir(collect_dir, &dirs);
	for (size_t i = 0; i < dirs.n; i++) {
		invalidate_dir(l, dirs.v[i].node, dirs.v[i].path);
		free(dirs.v[i].path);
	}
	free(dirs.v);
	vn_invalidate_flush();
}

/* ---- attach / detach ---- */

/* A refusal's reason into ERR (truncated to ERRLEN: a reason is one line). */
static void __attribute__((format(printf, 3, 4)))
say(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/*
 * Attaches SOURCE_PATH (absolute, or an http(s) URL fetched as REMOTE
 * says) at VIEW_PATH.  DIGEST ("sha256:<hex>", or NULL) pins an image's
 * hash tree root (source_open_pinned).  0 and *ret_id, or -errno with a
 * one-line reason naming the source in err.
 */
static int vz_attach(const char *source_path, const char *view_path, const char *digest,
		     const struct remote_options *remote, uint64_t *ret_id, char *err,
		     size_t errlen)
{
	static const struct remote_options defaults = { 0 };
	char path[PATH_MAX];
	char why[512] = "";
	uint8_t pin[VERITY_DIGEST];
	char shown[PATH_MAX];	/* source_path as messages and status show it */
	if (http_is_url(source_path))
		http_url_redact(source_path, shown, sizeof(shown));
	else
		snprintf(shown, sizeof(shown), "%s", source_path);
	int r = vz_path_normalize(view_path, path, sizeof(path));
	if (r < 0) {
		say(err, errlen, "%s: bad path in the view '%s' (absolute, without . or ..)",
			 shown, view_path);
		return r;
	}
	if (source_path[0] != '/' && !http_is_url(source_path)) {
		say(err, errlen, "%s: the source must be an absolute path or an http(s) URL",
			 shown);
		return -EINVAL;
	}
	if (digest && !verity_digest_parse(digest, pin)) {
		say(err, errlen, "%s: bad digest '%s' (want sha256: and 64 hex digits)",
			 shown, digest);
		return -EINVAL;
	}
	pthread_mutex_lock(&admin_lock);
	struct source *src;
	if (http_is_url(source_path))
		r = source_open_remote(source_path, remote ? remote : &defaults,
				       digest ? pin : NULL, &src, why, sizeof(why));
	else
		r = open_source(source_path, digest ? pin : NULL, &src, why, sizeof(why));
	if (r < 0) {
		say(err, errlen, "%s: %s", shown, why[0] ? why : strerror(-r));
		goto out;
	}
	struct layer *l;
	r = vz_layers_add(src, shown, path, &l);
	if (r < 0) {
		source_put(src);
		say(err, errlen, "%s: cannot read its root: %s", shown, strerror(-r));
		goto out;
	}
	invalidate_layer(l);
	*ret_id = l->id;
	log_info("attached layer %llu: %s (%s) at %s", (unsigned long long)l->id, shown,
		 source_kind_name(src), path);
	vz_layer_put(l);
out:
	pthread_mutex_unlock(&admin_lock);
	return r;
}

/*
 * How the layers named at mount fetch URLs: the remote options given at
 * mount, which come before the layers in the arguments.  The strings are
 * kept for the daemon's life (a layer's reader refers to them).
 */
static struct remote_options mount_remote;

static int remote_arg(void *f, const char *key, const char *value)
{
	char *end;
	errno = 0;
	bool cacert = !strcmp(key, "cacert");
	if (cacert || !strcmp(key, "cache-dir")) {
		char *copy = strdup(value);
		if (!copy)
			return -ENOMEM;
		*(cacert ? &mount_remote.cacert : &mount_remote.cache_dir) = copy;
		return 0;
	}
	if (!strcmp(key, "cache-size")) {
		mount_remote.cache_size = strtoull(value, &end, 10);
		if (!errno && !*end && value[0])
			return 0;
	} else if (!strcmp(key, "fetch-timeout-ms")) {
		unsigned long ms = strtoul(value, &end, 10);
		mount_remote.timeout_ms = (unsigned)ms;
		if (!errno && !*end && value[0] && ms <= UINT_MAX)
			return 0;
	}
	vn_attach_error(f, "virtualize filter: bad argument %s=%s", key, value);
	return -EINVAL;
}

/* One "layer=SRC[:PATH][#sha256:HEX]" line of the filter's load arguments, or a remote option. */
static int attach_arg(const char *key, const char *value, void *f)
{
	if (strcmp(key, "layer") && value)
		return remote_arg(f, key, value);
	if (strcmp(key, "layer") || !value) {
		vn_attach_error(f, "virtualize filter: unknown argument '%s' "
			       "(want layer=SRC[:PATH][#sha256:HEX])", key);
		return -EINVAL;
	}
	char *src, *path, *digest, why[1024];
	uint64_t id;
	int r = vz_layer_spec_parse(value, &src, &path, &digest);
	if (r < 0) {
		vn_attach_error(f, "bad layer '%s' (SRC[:PATH][#sha256:<hex>])", value);
		return r;
	}
	r = vz_attach(src, path, digest, &mount_remote, &id, why, sizeof(why));
	if (r < 0)
		vn_attach_error(f, "layer %s", why);
	free(src);
	free(path);
	free(digest);
	return r;
}

int vz_attach_args(struct vn_filter *f, const char *args)
{
	int r = filter_args_each(args, attach_arg, f);
	if (r < 0)
		vz_layers_clear();
	return r;
}

int vz_detach(const char *spec, char *err, size_t errlen)
{
	pthread_mutex_lock(&admin_lock);
	struct layer *l;
	int r = vz_layers_remove(spec, &l);
	if (r < 0) {
		snprintf(err, errlen, "no layer '%s' (give a layer id or its path in the view)",
			 spec);
	} else {
		invalidate_layer(l);
		log_info("detached layer %llu: %s at %s", (unsigned long long)l->id,
			 l->source_path, l->path);
		vz_layer_put(l);
	}
	pthread_mutex_unlock(&admin_lock);
	return r;
}

/* ---- status ---- */

struct text {
	char *buf;
	size_t len, cap;
	int error;
};

static void text_add(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void text_add(struct text *t, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (!t->error)
		t->error = textbuf_vprintf(&t->buf, &t->len, &t->cap, fmt, ap);
	va_end(ap);
}

/* Hands the text to *ret_text, or frees it and returns the first error. */
static int text_finish(struct text *t, char **ret_text)
{
	if (t->error) {
		free(t->buf);
		return t->error;
	}
	*ret_text = t->buf;
	return 0;
}

static void json_string(struct text *t, const char *s)
{
	if (!t->error)
		t->error = textbuf_json_string(&t->buf, &t->len, &t->cap, s);
}

/*
 * Names of L hidden by real objects: a real object of another type, or a
 * real non-directory, at the same path.  Walks L's directories that are
 * real directories too; never follows a symlink of the real tree.
 */
struct hidden_walk {
	struct layer *l;
	char path[PATH_MAX];		/* view path of the directory being walked */
	uint64_t hidden;
};

static int hidden_in_dir(struct hidden_walk *w, uint64_t ref, const char *rel);

static int hidden_entry(void *arg, const char *name, uint64_t ino, mode_t type)
{
	struct hidden_walk *w = arg;
	size_t plen = strlen(w->path);
	if (vz_path_join(w->path, name, w->path, sizeof(w->path)) < 0)
		return 0;
	struct stat real;
	int fd = open_beneath(w->path + 1, O_PATH);
	bool exists = fd >= 0 && fstat(fd, &real) == 0;
	if (exists && S_ISDIR(real.st_mode) && S_ISDIR(type)) {
		const char *rel = vz_path_under(w->path, w->l->path, w->l->path_len);
		uint64_t cref;
		struct stat st;
		if (rel && vz_layer_walk(w->l, rel, &cref, &st) == 0)
			hidden_in_dir(w, cref, rel);
	} else if (exists || fd == -ELOOP) {
		w->hidden++;
	}
	if (fd >= 0)
		close(fd);
	w->path[plen] = '\0';	/* back to the directory */
	return 0;
}

static int hidden_in_dir(struct hidden_walk *w, uint64_t ref, const char *rel)
{
	char *copy = strdup(rel);
	if (!copy)
		return -ENOMEM;
	int r = source_readdir(w->l->src, ref, copy, hidden_entry, w);
	free(copy);
	return r;
}

static uint64_t hidden_names(struct layer *l)
{
	struct hidden_walk w = { .l = l };
	snprintf(w.path, sizeof(w.path), "%s", l->path);
	int fd = open_beneath(l->path + 1, O_PATH);
	struct stat real;
	bool dir = fd >= 0 && fstat(fd, &real) == 0 && S_ISDIR(real.st_mode);
	if (fd >= 0)
		close(fd);
	if (!dir)
		return fd >= 0 ? 1 : 0;	/* a real non-directory hides the whole layer */
	hidden_in_dir(&w, l->root_ref, "");
	return w.hidden;
}

static void status_layer(struct text *t, struct layer *l, bool json, bool first)
{
	struct source_stats s;
	source_get_stats(l->src, &s);
	uint64_t hidden = hidden_names(l);
	unsigned int open = __atomic_load_n(&l->open_files, __ATOMIC_RELAXED);
	if (json) {
		text_add(t, "%s{\"id\":%llu,\"source\":", first ? "" : ",", (unsigned long long)l->id);
		json_string(t, l->source_path);
		text_add(t, ",\"kind\":\"%s\",\"path\":", source_kind_name(l->src));
		json_string(t, l->path);
		text_add(t, ",\"entries\":%llu,\"bytes\":%llu,\"open_files\":%u,\"hidden\":%llu",
			 (unsigned long long)s.entries, (unsigned long long)s.bytes, open,
			 (unsigned long long)hidden);
		if (s.integrity)
			text_add(t, ",\"integrity\":\"%s\"", s.integrity);
		if (s.digest[0])
			text_add(t, ",\"digest\":\"%s\"", s.digest);
		if (s.remote)
			text_add(t, ",\"remote\":{\"requests\":%llu,\"bytes_fetched\":%llu,"
				 "\"cache_hits\":%llu,\"cache_misses\":%llu,\"failures\":%llu,"
				 "\"cache_bytes\":%llu}", (unsigned long long)s.fetch.requests,
				 (unsigned long long)s.fetch.bytes_fetched,
				 (unsigned long long)s.fetch.cache_hits,
				 (unsigned long long)s.fetch.cache_misses,
				 (unsigned long long)s.fetch.failures,
				 (unsigned long long)s.fetch.cache_bytes);
		text_add(t, "}");
		return;
	}
	text_add(t, "%-4llu %-9s %-10s %-24s %9llu %12llu %6u %7llu  %s\n",
		 (unsigned long long)l->id, source_kind_name(l->src),
		 s.integrity ? s.integrity : "-", l->path, (unsigned long long)s.entries,
		 (unsigned long long)s.bytes, open, (unsigned long long)hidden, l->source_path);
	if (s.digest[0])
		text_add(t, "     digest %s\n", s.digest);
	if (s.remote)
		text_add(t, "     remote %llu requests, %llu bytes fetched, cache %llu hits %llu "
			 "misses, %llu failed fetches, cache use %llu bytes\n",
			 (unsigned long long)s.fetch.requests,
			 (unsigned long long)s.fetch.bytes_fetched,
			 (unsigned long long)s.fetch.cache_hits,
			 (unsigned long long)s.fetch.cache_misses,
			 (unsigned long long)s.fetch.failures,
			 (unsigned long long)s.fetch.cache_bytes);
}

int vz_status(bool json, char **ret_text)
{
	struct text t = { 0 };
	/*
	 * The reference on the current set (taken under set_lock) keeps its
	 * layers and their sources open: the walks of the real tree and the
	 * images below run with no lock held, beside attach and detach.
	 */
	struct layer_set *set = vz_set_get();
	if (json) {
		text_add(&t, "\"mountpoint\":");
		json_string(&t, mount_point ? mount_point : "");
		text_add(&t, ",\"layers\":[");
	} else {
		text_add(&t, "mount point: %s\n%zu layer%s\n", mount_point ? mount_point : "",
			 set ? set->n : 0, set && set->n == 1 ? "" : "s");
		if (set)
			text_add(&t, "%-4s %-9s %-10s %-24s %9s %12s %6s %7s  %s\n", "ID", "KIND",
				 "INTEGRITY", "PATH", "ENTRIES", "BYTES", "OPEN", "HIDDEN", "SOURCE");
	}
	for (size_t i = 0; set && i < set->n; i++)
		status_layer(&t, set->layer[i], json, i == 0);
	if (json)
		text_add(&t, "]");
	vz_set_put(set);
	return text_finish(&t, ret_text);
}

static void prom_label(struct text *t, const char *s)
{
	if (!t->error)
		t->error = textbuf_prom_label(&t->buf, &t->len, &t->cap, s);
}

enum layer_figure { LAYER_ENTRIES, LAYER_BYTES, LAYER_OPEN_FILES };

/* One gauge family of a layer figure, one sample per layer. */
static void metrics_layer_family(struct text *t, struct layer_set *set, const char *metric,
				 const char *help, enum layer_figure fig)
{
	text_add(t, "# HELP %s %s\n# TYPE %s gauge\n", metric, help, metric);
	for (size_t i = 0; set && i < set->n; i++) {
		struct layer *l = set->layer[i];
		struct source_stats s;
		source_get_stats(l->src, &s);
		uint64_t v = fig == LAYER_ENTRIES ? s.entries : fig == LAYER_BYTES ? s.bytes
			   : __atomic_load_n(&l->open_files, __ATOMIC_RELAXED);
		text_add(t, "%s{id=\"%llu\",path=", metric, (unsigned long long)l->id);
		prom_label(t, l->path);
		text_add(t, "} %llu\n", (unsigned long long)v);
	}
}

/* The figures of remote layers, one family each (remote layers only). */
static const struct remote_metric {
	const char *name, *type, *help;
	size_t member;			/* in struct remote_stats */
} remote_metrics[] = {
	{ "veneer_layer_fetch_requests_total", "counter",
	  "HTTP requests made for a remote layer.", offsetof(struct remote_stats, requests) },
	{ "veneer_layer_fetch_bytes_total", "counter",
	  "Body bytes fetched for a remote layer.", offsetof(struct remote_stats, bytes_fetched) },
	{ "veneer_layer_fetch_failures_total", "counter",
	  "Fetches of a remote layer that failed.", offsetof(struct remote_stats, failures) },
	{ "veneer_layer_cache_hits_total", "counter",
	  "Chunks of a remote layer read from the chunk cache.",
	  offsetof(struct remote_stats, cache_hits) },
	{ "veneer_layer_cache_misses_total", "counter",
	  "Chunks of a remote layer fetched.", offsetof(struct remote_stats, cache_misses) },
	{ "veneer_layer_cache_bytes", "gauge",
	  "Bytes in a remote layer's chunk cache directory (all images).",
	  offsetof(struct remote_stats, cache_bytes) },
};

static void metrics_remote_family(struct text *t, struct layer_set *set,
				  const struct remote_metric *m)
{
	text_add(t, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help, m->name, m->type);
	for (size_t i = 0; set && i < set->n; i++) {
		struct layer *l = set->layer[i];
		struct source_stats s;
		source_get_stats(l->src, &s);
		if (!s.remote)
			continue;
		uint64_t v;
		memcpy(&v, (const char *)&s.fetch + m->member, sizeof(v));
		text_add(t, "%s{id=\"%llu\",path=", m->name, (unsigned long long)l->id);
		prom_label(t, l->path);
		text_add(t, "} %llu\n", (unsigned long long)v);
	}
}

int vz_metrics(char **ret_text)
{
	struct text t = { 0 };
	struct layer_set *set = vz_set_get();	/* as in vz_status: no admin_lock */
	text_add(&t, "# HELP veneer_layers Layers attached.\n# TYPE veneer_layers gauge\n"
		 "veneer_layers %zu\n", set ? set->n : 0);
	text_add(&t, "# HELP veneer_layer_info A layer: its source, kind and, for an image, "
		 "integrity and digest.\n# TYPE veneer_layer_info gauge\n");
	for (size_t i = 0; set && i < set->n; i++) {
		struct layer *l = set->layer[i];
		struct source_stats s;
		source_get_stats(l->src, &s);
		text_add(&t, "veneer_layer_info{id=\"%llu\",path=", (unsigned long long)l->id);
		prom_label(&t, l->path);
		text_add(&t, ",kind=\"%s\",source=", source_kind_name(l->src));
		prom_label(&t, l->source_path);
		if (s.integrity)
			text_add(&t, ",integrity=\"%s\"", s.integrity);
		if (s.digest[0])
			text_add(&t, ",digest=\"%s\"", s.digest);
		text_add(&t, "} 1\n");
	}
	metrics_layer_family(&t, set, "veneer_layer_entries", "Objects in a layer.",
			     LAYER_ENTRIES);
	metrics_layer_family(&t, set, "veneer_layer_bytes", "Bytes of a layer's files.",
			     LAYER_BYTES);
	metrics_layer_family(&t, set, "veneer_layer_open_files", "Files of a layer open now.",
			     LAYER_OPEN_FILES);
	for (size_t i = 0; i < sizeof(remote_metrics) / sizeof(remote_metrics[0]); i++)
		metrics_remote_family(&t, set, &remote_metrics[i]);
	vz_set_put(set);
	return text_finish(&t, ret_text);
}

/* ---- the attach and detach ports ---- */

/*
 * An attach with remote options has 7 arguments: SOURCE PATH DIGEST
 * CACERT CACHE_DIR CACHE_SIZE TIMEOUT_MS, where "" leaves one unset.
 */
#define ATTACH_ARGS_REMOTE 7

static int remote_options_from_args(char **args, struct remote_options *o, char *err,
				    size_t errlen)
{
	char *end;
	o->cacert = args[0][0] ? args[0] : NULL;
	o->cache_dir = args[1][0] ? args[1] : NULL;
	errno = 0;
	o->cache_size = args[2][0] ? strtoull(args[2], &end, 10) : 0;
	if (args[2][0] && (errno || *end)) {
		snprintf(err, errlen, "bad cache size '%s'", args[2]);
		return -EINVAL;
	}
	unsigned long ms = args[3][0] ? strtoul(args[3], &end, 10) : 0;
	if (args[3][0] && (errno || *end || ms > UINT_MAX)) {
		snprintf(err, errlen, "bad fetch timeout '%s'", args[3]);
		return -EINVAL;
	}
	o->timeout_ms = (unsigned)ms;
	return 0;
}

/* The request VERB with its NARGS arguments: 0 and *ret_text (malloc'd or NULL), or -errno and ERR. */
static int serve(const char *verb, int nargs, char **args, char **ret_text, char *err,
		 size_t errlen)
{
	*ret_text = NULL;
	if (!strcmp(verb, "attach") && (nargs == 2 || nargs == 3 || nargs == ATTACH_ARGS_REMOTE)) {
		/* then the digest ("" or absent: none) and the remote options */
		struct remote_options o = { 0 };
		uint64_t id;
		int r = nargs == ATTACH_ARGS_REMOTE ? remote_options_from_args(args + 3, &o, err,
									       errlen) : 0;
		const char *digest = nargs >= 3 && args[2][0] ? args[2] : NULL;
		if (r == 0)
			r = vz_attach(args[0], args[1], digest, &o, &id, err, errlen);
		if (r == 0 && asprintf(ret_text, "%llu", (unsigned long long)id) < 0) {
			*ret_text = NULL;
			r = -ENOMEM;
		}
		return r;
	}
	if (!strcmp(verb, "detach") && nargs == 1)
		return vz_detach(args[0], err, errlen);
	snprintf(err, errlen, "unknown request '%s' with %d argument%s", verb, nargs,
		 nargs == 1 ? "" : "s");
	return -EINVAL;
}


/*
 * A port message is the request's arguments, each ended by a NUL, as the
 * control socket's fields are: VERB served with them, the reply its text.
 */
static int serve_port(struct vn_filter *f, const char *verb, const void *msg, size_t len,
		      void **ret_reply, size_t *ret_len)
{
	if (len == 0 || ((const char *)msg)[len - 1] != '\0') {
		vn_port_error(f, "%s: the message is not fields each ended by a NUL", verb);
		return -EINVAL;
	}
	char *copy = malloc(len), *fields[ATTACH_ARGS_REMOTE];
	if (!copy)
		return -ENOMEM;
	memcpy(copy, msg, len);
	/* all are counted, the first ones kept: serve() reads only as many as a request has */
	int n = 0;
	for (char *p = copy; p < copy + len; p += strlen(p) + 1, n++)
		if (n < ATTACH_ARGS_REMOTE)
			fields[n] = p;
	char err[512] = "", *text = NULL;
	int r = serve(verb, n, fields, &text, err, sizeof(err));
	free(copy);
	if (r < 0) {
		if (err[0])
			vn_port_error(f, "%s", err);
		return r;
	}
	*ret_reply = text;
	*ret_len = text ? strlen(text) : 0;
	return 0;
}

static int attach_port(struct vn_filter *f, void *priv, const void *msg, size_t len,
		       void **ret_reply, size_t *ret_len)
{
	return serve_port(f, "attach", msg, len, ret_reply, ret_len);
}

static int detach_port(struct vn_filter *f, void *priv, const void *msg, size_t len,
		       void **ret_reply, size_t *ret_len)
{
	return serve_port(f, "detach", msg, len, ret_reply, ret_len);
}

int vz_ports_open(struct vn_filter *f)
{
	int r = vn_port_open(f, "attach", attach_port, NULL);
	return r < 0 ? r : vn_port_open(f, "detach", detach_port, NULL);
}
