/*
 * Unit test of the control socket: socket naming, the wire format and its
 * malformed inputs, and a real server with a fake handler in a temporary
 * $VENEER_RUNTIME_DIR (stale sockets, a second server, garbage, the
 * SO_PEERCRED gate), and streaming verbs with a fake stream (order,
 * chunking, either end stopping, slow clients, the watcher limit).  It
 * does not mount anything.
 */
#include "control/control.h"
#include "control/control_proto.h"

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../tests/unit.h"

static char base[PATH_MAX];	/* the temporary VENEER_RUNTIME_DIR */

/* What the fake handler was last asked, read by the test thread. */
static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;
static char seen[256];		/* protected by seen_lock */

static int fake_call(void *arg, const char *verb, int nargs, char **args, char **ret_text,
		     char *err, size_t errlen)
{
	pthread_mutex_lock(&seen_lock);
	snprintf(seen, sizeof(seen), "%s/%d/%s/%s", verb, nargs, nargs > 0 ? args[0] : "",
		 nargs > 1 ? args[1] : "");
	pthread_mutex_unlock(&seen_lock);
	(*(int *)arg)++;
	if (!strcmp(verb, "attach") && nargs == 2) {
		*ret_text = strdup("L1");
		return 0;
	}
	if (!strcmp(verb, "detach") && nargs == 1) {
		if (!strcmp(args[0], "missing")) {
			snprintf(err, errlen, "no layer '%s'", args[0]);
			return -ENOENT;
		}
		*ret_text = NULL;
		return 0;
	}
	if (!strcmp(verb, "status") && nargs == 1) {
		*ret_text = strdup(!strcmp(args[0], "json") ? "{\"layers\":[]}\n" : "no layers\n");
		return 0;
	}
	snprintf(err, errlen, "unknown command '%s'", verb);
	return -EINVAL;
}

static bool seen_is(const char *want)
{
	pthread_mutex_lock(&seen_lock);
	bool same = !strcmp(seen, want);
	pthread_mutex_unlock(&seen_lock);
	return same;
}

static int path_of(const char *dir, const char *mp, char *buf)
{
	return control_socket_path_in(dir, mp, buf, PATH_MAX);
}

static void test_naming(void)
{
	char p[PATH_MAX], q[PATH_MAX];
	CHECK(path_of("/run/veneer", "/home/ann/my-data", p) == 0);
	CHECK(!strcmp(p, "/run/veneer/home-ann-my\\x2ddata.sock"));
	CHECK(path_of("/run/veneer", "/", p) == 0 && !strcmp(p, "/run/veneer/-.sock"));
	CHECK(path_of("/d", "/.hidden/a b", p) == 0 && !strcmp(p, "/d/\\x2ehidden-a\\x20b.sock"));
	CHECK(path_of("/d", "/a-b", p) == 0 && path_of("/d", "/a/b", q) == 0 && strcmp(p, q));
	CHECK(path_of("/d", "relative", p) == -EINVAL);
	CHECK(path_of("/d", "/a//b", p) == -EINVAL);
	CHECK(path_of("/d", "/a/../b", p) == -EINVAL);
	CHECK(path_of("/d", "/a/./b", p) == -EINVAL);
	CHECK(path_of("/d", "/a/", p) == -EINVAL);

	/* too long for sun_path: hash plus a readable tail, still unique */
	char mp1[300], mp2[300];
	memset(mp1, 'x', sizeof(mp1));
	mp1[0] = '/';
	mp1[sizeof(mp1) - 1] = '\0';
	memcpy(mp2, mp1, sizeof(mp2));
	mp2[100] = 'y';
	CHECK(path_of("/run/user/1000/veneer", mp1, p) == 0);
	CHECK(path_of("/run/user/1000/veneer", mp2, q) == 0);
	CHECK(strlen(p) <= 107 && strlen(q) <= 107 && strcmp(p, q));
	CHECK(!strncmp(p, "/run/user/1000/veneer/~", 23));
	CHECK(p[23 + 16] == '-' && !strcmp(p + strlen(p) - 10, "xxxxx.sock"));
	/* a tail never starts inside a \xNN escape */
	char dashes[120] = "/";
	memset(dashes + 1, '-', 100);
	CHECK(path_of("/run/veneer", dashes, p) == 0 && strlen(p) <= 107);
	CHECK(p[12 + 17] == '-' && p[12 + 18] == '\\');
	char longdir[120];
	memset(longdir, 'd', sizeof(longdir));
	longdir[0] = '/';
	longdir[105] = '\0';
	CHECK(path_of(longdir, "/a", p) == -ENAMETOOLONG);
	CHECK(control_socket_path_in("/d", "/a", p, 5) == -ENAMETOOLONG);

	unsetenv("VENEER_RUNTIME_DIR");
	unsetenv("XDG_RUNTIME_DIR");
	CHECK(control_socket_path("/a", 1000, p, sizeof(p)) == -ENOENT);
	CHECK(control_socket_path("/a", 0, p, sizeof(p)) == 0 && !strcmp(p, "/run/veneer/a.sock"));
	setenv("XDG_RUNTIME_DIR", "/run/user/1000", 1);
	CHECK(control_socket_path("/a", 1000, p, sizeof(p)) == 0 &&
	      !strcmp(p, "/run/user/1000/veneer/a.sock"));
	setenv("VENEER_RUNTIME_DIR", base, 1);
	CHECK(control_socket_dir(1000, p, sizeof(p)) == 0 && !strncmp(p, base, strlen(base)));
}

static void test_make_dir(void)
{
	char dir[PATH_MAX + 16];	/* base plus a suffix */
	snprintf(dir, sizeof(dir), "%s/mk/a/b", base);
	CHECK(control_make_dir(dir, geteuid()) == 0);
	struct stat st;
	CHECK(stat(dir, &st) == 0 && (st.st_mode & 0777) == 0700);
	CHECK(control_make_dir(dir, geteuid()) == 0);
	CHECK(control_make_dir(dir, geteuid() + 1) == -EPERM);
	CHECK(chmod(dir, 0777) == 0);
	CHECK(control_make_dir(dir, geteuid()) == -EPERM);
}

static void test_encode_decode(void)
{
	const char *in[] = { "attach", "/img/a.sqfs", "/" };
	char *buf;
	size_t len;
	CHECK(control_msg_encode(3, in, &buf, &len) == 0);
	CHECK(len == 4 + 7 + 12 + 2);
	CHECK(control_msg_length((unsigned char *)buf) == len - 4);
	int n;
	char *f[CONTROL_MAX_FIELDS];
	CHECK(control_msg_decode(buf + 4, len - 4, &n, f) == 0);
	CHECK(n == 3 && !strcmp(f[0], "attach") && !strcmp(f[1], "/img/a.sqfs") && !strcmp(f[2], "/"));
	free(buf);

	const char *empty[] = { "ok", "" };
	CHECK(control_msg_encode(2, empty, &buf, &len) == 0);
	CHECK(control_msg_decode(buf + 4, len - 4, &n, f) == 0 && n == 2 && !f[1][0]);
	free(buf);

	char body[64] = "abc";
	CHECK(control_msg_decode(body, 0, &n, f) == -EINVAL);
	CHECK(control_msg_decode(body, 3, &n, f) == -EINVAL);	/* no final NUL */
	char many[2 * (CONTROL_MAX_FIELDS + 1)];
	for (size_t i = 0; i < sizeof(many); i += 2)
		many[i] = 'a', many[i + 1] = '\0';
	CHECK(control_msg_decode(many, sizeof(many), &n, f) == -EINVAL);
	CHECK(control_msg_decode(many, sizeof(many) - 2, &n, f) == 0 && n == CONTROL_MAX_FIELDS);

	const char *fields[CONTROL_MAX_FIELDS + 1];
	for (int i = 0; i <= CONTROL_MAX_FIELDS; i++)
		fields[i] = "a";
	CHECK(control_msg_encode(CONTROL_MAX_FIELDS + 1, fields, &buf, &len) == -EINVAL);
	CHECK(control_msg_encode(0, fields, &buf, &len) == -EINVAL);
	char *huge = malloc(CONTROL_MAX_MESSAGE + 1);
	CHECK(huge != NULL);
	memset(huge, 'z', CONTROL_MAX_MESSAGE);
	huge[CONTROL_MAX_MESSAGE] = '\0';
	const char *big[] = { huge };
	CHECK(control_msg_encode(1, big, &buf, &len) == -EMSGSIZE);
	free(huge);

	char err[64];
	char *text;
	char ok0[] = "ok", ok1[] = "hello";
	char *ok[] = { ok0, ok1 };
	CHECK(control_reply_parse(2, ok, &text, err, sizeof(err)) == 0 && !strcmp(text, "hello"));
	free(text);
	char e0[] = "err", e1[] = "2", e2[] = "nope", bad[] = "x2";
	char *e[] = { e0, e1, e2 };
	CHECK(control_reply_parse(3, e, &text, err, sizeof(err)) == -ENOENT && !strcmp(err, "nope"));
	e[1] = bad;
	CHECK(control_reply_parse(3, e, &text, err, sizeof(err)) == -EPROTO);
	CHECK(control_reply_parse(1, ok, &text, err, sizeof(err)) == -EPROTO);
}

/* control_msg_recv() on a socketpair fed with RAW then closed (or not). */
static int recv_raw(const void *raw, size_t len, bool close_writer, int cancel_fd)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	if (len && write(sv[1], raw, len) != (ssize_t)len)
		return -EIO;
	if (close_writer)
		close(sv[1]);
	char *body = NULL;
	size_t blen;
	int r = control_msg_recv(sv[0], control_deadline(200), cancel_fd, &body, &blen);
	free(body);
	close(sv[0]);
	if (!close_writer)
		close(sv[1]);
	return r;
}

static void test_recv_malformed(void)
{
	static const unsigned char trunc_header[] = { 5, 0 };
	static const unsigned char too_long[] = { 0x01, 0x00, 0x10, 0x00 };	/* 1 MiB + 1 */
	static const unsigned char zero[] = { 0, 0, 0, 0 };
	static const unsigned char trunc_body[] = { 10, 0, 0, 0, 'a', 'b', 'c' };
	static const unsigned char good[] = { 3, 0, 0, 0, 'o', 'k', 0 };
	CHECK(recv_raw(trunc_header, sizeof(trunc_header), true, -1) == -EPROTO);
	CHECK(recv_raw(too_long, sizeof(too_long), true, -1) == -EMSGSIZE);
	CHECK(recv_raw(zero, sizeof(zero), true, -1) == -EINVAL);
	CHECK(recv_raw(trunc_body, sizeof(trunc_body), true, -1) == -EPROTO);
	CHECK(recv_raw(good, sizeof(good), true, -1) == 0);
	CHECK(recv_raw(NULL, 0, false, -1) == -ETIMEDOUT);
	int efd = eventfd(1, EFD_CLOEXEC);
	CHECK(efd >= 0);
	CHECK(recv_raw(NULL, 0, false, efd) == -ECANCELED);
	close(efd);
}

/* Sends RAW bytes to the socket at PATH and returns the errno of the err reply. */
static int raw_request(const char *path, const void *raw, size_t len)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		return -1000;
	if (len && write(fd, raw, len) != (ssize_t)len)
		return -1001;
	char *body = NULL, *f[CONTROL_MAX_FIELDS], *text = NULL, err[256];
	size_t blen;
	int n, r = control_msg_recv(fd, control_deadline(10000), -1, &body, &blen);
	if (r == 0)
		r = control_msg_decode(body, blen, &n, f);
	if (r == 0)
		r = control_reply_parse(n, f, &text, err, sizeof(err));
	free(text);
	free(body);
	close(fd);
	return r;
}

static void test_server_calls(const char *mp, const char *path)
{
	char err[256], *text;
	const char *attach[] = { "/img/a.sqfs", "/opt" };
	CHECK(control_call(mp, "attach", 2, attach, &text, err, sizeof(err)) == 0);
	CHECK(!strcmp(text, "L1") && seen_is("attach/2//img/a.sqfs//opt"));
	free(text);
	const char *missing[] = { "missing" };
	CHECK(control_call(mp, "detach", 1, missing, &text, err, sizeof(err)) == -ENOENT);
	CHECK(!strcmp(err, "no layer 'missing'"));
	const char *l1[] = { "L1" };
	CHECK(control_call(mp, "detach", 1, l1, &text, err, sizeof(err)) == 0 && !text[0]);
	free(text);
	const char *json[] = { "json" };
	CHECK(control_call(mp, "status", 1, json, &text, err, sizeof(err)) == 0);
	CHECK(!strcmp(text, "{\"layers\":[]}\n"));
	free(text);
	CHECK(control_call(mp, "frobnicate", 0, NULL, &text, err, sizeof(err)) == -EINVAL);
	CHECK(!strcmp(err, "unknown command 'frobnicate'"));

	static const unsigned char no_nul[] = { 5, 0, 0, 0, 'a', 'b', 'c', 'd', 'e' };
	static const unsigned char too_long[] = { 0xff, 0xff, 0xff, 0x7f };
	static const unsigned char empty_verb[] = { 1, 0, 0, 0, 0 };
	CHECK(raw_request(path, no_nul, sizeof(no_nul)) == -EINVAL);
	CHECK(raw_request(path, too_long, sizeof(too_long)) == -EMSGSIZE);
	CHECK(raw_request(path, empty_verb, sizeof(empty_verb)) == -EINVAL);
	/* a client that says nothing is answered and dropped after 5 s */
	CHECK(raw_request(path, NULL, 0) == -ETIMEDOUT);
	/* and the server still works afterwards */
	CHECK(control_call(mp, "status", 1, json, &text, err, sizeof(err)) == 0);
	free(text);
}

/* In a child running as nobody: control_call must be refused with EXPECT_MSG. */
static bool refused_as_nobody(const char *mp, const char *expect_msg)
{
	pid_t pid = fork();
	if (pid == 0) {
		if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
			_exit(3);
		char err[256], *text;
		const char *json[] = { "json" };
		int r = control_call(mp, "status", 1, json, &text, err, sizeof(err));
		if (r != -EACCES) {
			fprintf(stderr, "# child: %d %s\n", r, err);
			_exit(1);
		}
		if (!strstr(err, expect_msg)) {
			fprintf(stderr, "# child message: %s\n", err);
			_exit(2);
		}
		_exit(0);
	}
	int status;
	return pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
	       WEXITSTATUS(status) == 0;
}

static void test_peercred(const char *mp, const char *path)
{
	if (geteuid() != 0) {
		printf("ok %d # skip SO_PEERCRED refusal needs root\n", ++unit_count);
		return;
	}
	char dir[PATH_MAX + 16];	/* base plus a suffix */
	snprintf(dir, sizeof(dir), "%s/veneer", base);
	/* the directory's mode stops strangers first; the socket refuses them too */
	CHECK(chmod(base, 0711) == 0 && chmod(dir, 0711) == 0);
	CHECK(refused_as_nobody(mp, "permission denied: cannot connect"));
	/* open the file modes so the request reaches the SO_PEERCRED check */
	CHECK(chmod(path, 0666) == 0);
	CHECK(refused_as_nobody(mp, "permission denied: only uid 0 or root may control this mount"));
	CHECK(chmod(path, 0600) == 0 && chmod(dir, 0700) == 0);
}

/* A socket file left behind by a dead daemon: bound, never listened on. */
static void make_stale(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	CHECK(strlen(path) < sizeof(addr.sun_path));
	memcpy(addr.sun_path, path, strlen(path));
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0);
	close(fd);
}

static void test_server(void)
{
	int ncalls = 0;
	struct control_handler h = { .call = fake_call, .arg = &ncalls };
	const char *mp = "/mnt/ctl-test";
	char path[PATH_MAX], err[256], *text;
	CHECK(control_socket_path(mp, geteuid(), path, sizeof(path)) == 0);
	CHECK(control_call(mp, "status", 0, NULL, &text, err, sizeof(err)) == -ENOENT);
	CHECK(strstr(err, "no veneer mount at /mnt/ctl-test (no control socket at ") != NULL);

	struct control_server *srv, *srv2;
	CHECK(control_server_start(mp, geteuid(), &h, &srv) == 0);
	struct stat st;
	CHECK(lstat(path, &st) == 0 && S_ISSOCK(st.st_mode) && (st.st_mode & 0777) == 0600);
	CHECK(control_server_start(mp, geteuid(), &h, &srv2) == -EADDRINUSE);
	test_server_calls(mp, path);
	test_peercred(mp, path);
	control_server_stop(srv);
	CHECK(lstat(path, &st) < 0 && errno == ENOENT);
	CHECK(control_call(mp, "status", 0, NULL, &text, err, sizeof(err)) == -ENOENT);

	/* a stale socket is replaced */
	make_stale(path);
	CHECK(control_call(mp, "status", 0, NULL, &text, err, sizeof(err)) == -ECONNREFUSED);
	CHECK(control_server_start(mp, geteuid(), &h, &srv) == 0);
	const char *text_arg[] = { "text" };
	CHECK(control_call(mp, "status", 1, text_arg, &text, err, sizeof(err)) == 0);
	CHECK(!strcmp(text, "no layers\n"));
	free(text);

	/* stop leaves alone a file that is no longer the socket it bound */
	CHECK(unlink(path) == 0);
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	fclose(f);
	control_server_stop(srv);
	CHECK(lstat(path, &st) == 0 && S_ISREG(st.st_mode));
	CHECK(control_server_start(mp, geteuid(), &h, &srv) == -EEXIST);
	CHECK(unlink(path) == 0);
	control_server_stop(NULL);
}

/* ---- streams ---- */

/* How many streams the fake opened and closed (server side). */
static int stream_opens, stream_closes;

struct fake_stream {
	char verb[16];
	unsigned long n;		/* next number ("count"), calls so far */
};

static bool fake_is_stream(void *arg, const char *verb)
{
	return !strcmp(verb, "count") || !strcmp(verb, "quiet") || !strcmp(verb, "end") ||
	       !strcmp(verb, "flood") || !strcmp(verb, "big") || !strcmp(verb, "refuse") ||
	       !strcmp(verb, "backlog");
}

static pid_t stream_peer;	/* the last stream's client process */

static int fake_open(void *arg, pid_t peer, const char *verb, int nargs, char **args,
		     void **ret_ctx, char **ret_text, char *err, size_t errlen)
{
	__atomic_store_n(&stream_peer, peer, __ATOMIC_SEQ_CST);
	if (!strcmp(verb, "refuse")) {
		snprintf(err, errlen, "not today");
		return -EPERM;
	}
	struct fake_stream *fs = calloc(1, sizeof(*fs));
	if (!fs)
		return -ENOMEM;
	snprintf(fs->verb, sizeof(fs->verb), "%s", verb);
	*ret_ctx = fs;
	*ret_text = !strcmp(verb, "count") ? strdup(nargs > 0 ? args[0] : "counting\n") : NULL;
	__atomic_add_fetch(&stream_opens, 1, __ATOMIC_SEQ_CST);
	return 0;
}

static int append(char **buf, size_t *len, size_t *cap, const char *text, size_t n)
{
	if (*len + n > *cap) {
		size_t ncap = (*len + n) * 2;
		char *p = realloc(*buf, ncap);
		if (!p)
			return -ENOMEM;
		*buf = p;
		*cap = ncap;
	}
	memcpy(*buf + *len, text, n);
	*len += n;
	return 0;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
	nanosleep(&ts, NULL);
}

/* The text BIG sends: more than one message can hold, with a NUL in it. */
static char *big_text(size_t *ret_len)
{
	size_t len = CONTROL_MAX_MESSAGE + 4000;
	char *t = malloc(len);
	for (size_t i = 0; i < len; i++)
		t[i] = (i % 100 == 99) ? '\n' : (char)('a' + i % 26);
	t[10] = '\0';
	*ret_len = len;
	return t;
}

static int fake_next(void *ctx, char **buf, size_t *len, size_t *cap, int timeout_ms)
{
	struct fake_stream *fs = ctx;
	fs->n++;
	if (!strcmp(fs->verb, "count")) {
		char num[32];
		int n = snprintf(num, sizeof(num), "%lu\n", fs->n);
		sleep_ms(2);
		return append(buf, len, cap, num, (size_t)n);
	}
	if (!strcmp(fs->verb, "backlog")) {
		/* 100 lines, slowly while the stream runs, at once when it drains */
		if (fs->n > 100)
			return 0;
		char num[32];
		int n = snprintf(num, sizeof(num), "%lu\n", fs->n);
		sleep_ms(timeout_ms ? 20 : 0);
		return append(buf, len, cap, num, (size_t)n);
	}
	if (!strcmp(fs->verb, "end")) {
		if (fs->n > 2)
			return -ENODATA;
		return append(buf, len, cap, fs->n == 1 ? "a\n" : "b\n", 2);
	}
	if (!strcmp(fs->verb, "flood")) {
		static char block[65536];
		memset(block, 'x', sizeof(block));
		return append(buf, len, cap, block, sizeof(block));
	}
	if (!strcmp(fs->verb, "big") && fs->n == 1) {
		size_t n;
		char *t = big_text(&n);
		int r = append(buf, len, cap, t, n);
		free(t);
		return r;
	}
	sleep_ms(timeout_ms);
	return 0;
}

static void fake_close(void *ctx)
{
	free(ctx);
	__atomic_add_fetch(&stream_closes, 1, __ATOMIC_SEQ_CST);
}

static const struct control_stream_ops fake_stream_ops = {
	.is_stream = fake_is_stream,
	.open = fake_open,
	.next = fake_next,
	.close = fake_close,
};

static int64_t ms_now(void)
{
	return control_deadline(0);
}

/* Waits up to MS for stream_closes to reach WANT. */
static bool closes_reach(int want, int ms)
{
	int64_t end = ms_now() + ms;
	while (__atomic_load_n(&stream_closes, __ATOMIC_SEQ_CST) < want) {
		if (ms_now() > end)
			return false;
		sleep_ms(10);
	}
	return true;
}

/* One control_stream() client, run on a thread or directly. */
struct watcher {
	const char *mp, *verb;
	int nargs;
	const char *const *args;
	volatile int stop;
	int stop_after;			/* lines; 0: never */
	int ret_after;			/* lines, then on_text returns 7; 0: never */
	char *text;			/* all that was received */
	size_t len, cap;
	int nchunks;			/* atomic */
	int r;
	char err[256];
};

static int watcher_text(void *arg, const char *text, size_t len)
{
	struct watcher *w = arg;
	if (append(&w->text, &w->len, &w->cap, text, len) < 0 ||
	    append(&w->text, &w->len, &w->cap, "", 1) < 0)
		return -ENOMEM;
	w->len--;		/* kept NUL-terminated */
	__atomic_add_fetch(&w->nchunks, 1, __ATOMIC_SEQ_CST);
	int lines = 0;
	for (size_t i = 0; i < w->len; i++)
		lines += w->text[i] == '\n';
	if (w->ret_after && lines >= w->ret_after)
		return 7;
	if (w->stop_after && lines >= w->stop_after)
		__atomic_store_n(&w->stop, 1, __ATOMIC_SEQ_CST);
	return 0;
}

static void *watcher_run(void *arg)
{
	struct watcher *w = arg;
	w->r = control_stream(w->mp, w->verb, w->nargs, w->args, watcher_text, w, &w->stop,
			      w->err, sizeof(w->err));
	return NULL;
}

static void watcher_free(struct watcher *w)
{
	free(w->text);
	w->text = NULL;
}

/* "counting\n1\n2\n...N\n" */
static bool counted_to(const char *text, int n)
{
	char want[4096] = "counting\n";
	for (int i = 1; i <= n; i++)
		snprintf(want + strlen(want), sizeof(want) - strlen(want), "%d\n", i);
	return !strncmp(text, want, strlen(want));
}

/* Connects to PATH and asks for stream VERB; the fd once "ok" came back, or -errno. */
static int raw_stream(const char *path, const char *verb, char *err, size_t errlen)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		return -1000;
	const char *req[] = { verb };
	char *body = NULL, *f[CONTROL_MAX_FIELDS], *text = NULL;
	size_t blen;
	int n, r = control_msg_send(fd, control_deadline(5000), -1, 1, req);
	if (r == 0)
		r = control_msg_recv(fd, control_deadline(10000), -1, &body, &blen);
	if (r == 0)
		r = control_msg_decode(body, blen, &n, f);
	if (r == 0)
		r = control_reply_parse(n, f, &text, err, errlen);
	free(text);
	free(body);
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

static void test_stream_client(const char *mp)
{
	int closes = __atomic_load_n(&stream_closes, __ATOMIC_SEQ_CST);
	/*
	 * In order, opening text first; stopping the client ends the server's
	 * stream (after at most a second of sending what it still produces).
	 */
	struct watcher w = { .mp = mp, .verb = "count", .stop_after = 31 };
	watcher_run(&w);
	CHECK(w.r == 0 && counted_to(w.text, 30));
	CHECK(closes_reach(++closes, 3000));
	watcher_free(&w);

	/* after a stop the client still gets what the stream held, then the end */
	struct watcher wd = { .mp = mp, .verb = "backlog", .stop_after = 2 };
	int64_t t0 = ms_now();
	watcher_run(&wd);
	CHECK(wd.r == 0 && ms_now() - t0 < 1500);
	char want[512] = "";
	for (int i = 1; i <= 100; i++)
		snprintf(want + strlen(want), sizeof(want) - strlen(want), "%d\n", i);
	CHECK(wd.text && !strcmp(wd.text, want));
	CHECK(closes_reach(++closes, 3000));
	watcher_free(&wd);

	/* on_text's non-zero value ends the stream and is returned */
	struct watcher w7 = { .mp = mp, .verb = "count", .ret_after = 5 };
	watcher_run(&w7);
	CHECK(w7.r == 7 && counted_to(w7.text, 4));
	CHECK(closes_reach(++closes, 3000));
	watcher_free(&w7);

	/* the daemon ending the stream ends the client with 0 */
	struct watcher we = { .mp = mp, .verb = "end" };
	watcher_run(&we);
	CHECK(we.r == 0 && we.text && !strcmp(we.text, "a\nb\n"));
	CHECK(closes_reach(++closes, 3000));
	watcher_free(&we);

	/* open refusing: the client gets its errno and message */
	struct watcher wr = { .mp = mp, .verb = "refuse" };
	watcher_run(&wr);
	CHECK(wr.r == -EPERM && !strcmp(wr.err, "not today") && !wr.text);

	/* text longer than a message arrives whole, in order, without the NUL */
	struct watcher wb = { .mp = mp, .verb = "big", .stop_after = 0 };
	pthread_t t;
	CHECK(pthread_create(&t, NULL, watcher_run, &wb) == 0);
	size_t blen;
	char *big = big_text(&blen);
	memmove(big + 10, big + 11, blen - 11);
	blen--;
	int64_t end = ms_now() + 5000;
	while (__atomic_load_n(&wb.nchunks, __ATOMIC_SEQ_CST) < 3 && ms_now() < end)
		sleep_ms(10);
	__atomic_store_n(&wb.stop, 1, __ATOMIC_SEQ_CST);
	CHECK(pthread_join(t, NULL) == 0);
	CHECK(wb.r == 0 && wb.nchunks == 3 && wb.len == blen && !memcmp(wb.text, big, blen));
	free(big);
	watcher_free(&wb);
	CHECK(closes_reach(++closes, 3000));

	/* a stop flag set from elsewhere is seen while nothing arrives */
	struct watcher wq = { .mp = mp, .verb = "quiet" };
	CHECK(pthread_create(&t, NULL, watcher_run, &wq) == 0);
	sleep_ms(300);
	t0 = ms_now();
	__atomic_store_n(&wq.stop, 1, __ATOMIC_SEQ_CST);
	CHECK(pthread_join(t, NULL) == 0);
	CHECK(wq.r == 0 && ms_now() - t0 < 1000);
	CHECK(closes_reach(++closes, 3000));
}

static void test_stream_limit(const char *mp, const char *path)
{
	int closes = __atomic_load_n(&stream_closes, __ATOMIC_SEQ_CST);
	int fds[CONTROL_MAX_STREAMS];
	char err[256], *text;
	for (int i = 0; i < CONTROL_MAX_STREAMS; i++) {
		fds[i] = raw_stream(path, "quiet", err, sizeof(err));
		CHECK(fds[i] >= 0);
	}
	CHECK(raw_stream(path, "quiet", err, sizeof(err)) == -EBUSY);
	CHECK(strstr(err, "too many watchers") != NULL);
	struct watcher w = { .mp = mp, .verb = "count", .stop_after = 2 };
	watcher_run(&w);
	CHECK(w.r == -EBUSY && strstr(w.err, "too many watchers"));
	watcher_free(&w);
	/* ordinary verbs are still served while streams are open */
	const char *json[] = { "json" };
	CHECK(control_call(mp, "status", 1, json, &text, err, sizeof(err)) == 0);
	CHECK(!strcmp(text, "{\"layers\":[]}\n"));
	free(text);
	for (int i = 0; i < CONTROL_MAX_STREAMS; i++)
		close(fds[i]);
	closes += CONTROL_MAX_STREAMS;
	CHECK(closes_reach(closes, 3000));
	/* the slots are free again */
	struct watcher w2 = { .mp = mp, .verb = "count", .stop_after = 3 };
	watcher_run(&w2);
	CHECK(w2.r == 0 && counted_to(w2.text, 2));
	watcher_free(&w2);
	CHECK(closes_reach(++closes, 3000));
}

/* Server stop with a live reading watcher, and with one that never reads. */
static void test_stream_stop(const char *mp, const char *path, const struct control_handler *h)
{
	struct control_server *srv;
	CHECK(control_server_start(mp, geteuid(), h, &srv) == 0);
	int closes = __atomic_load_n(&stream_closes, __ATOMIC_SEQ_CST);
	struct watcher w = { .mp = mp, .verb = "count" };
	pthread_t t;
	CHECK(pthread_create(&t, NULL, watcher_run, &w) == 0);
	int64_t end = ms_now() + 5000;
	while (__atomic_load_n(&w.nchunks, __ATOMIC_SEQ_CST) < 5 && ms_now() < end)
		sleep_ms(10);
	/* a client that asks for a flood and never reads: the server blocks sending */
	char err[256];
	int slow = raw_stream(path, "flood", err, sizeof(err));
	CHECK(slow >= 0);
	sleep_ms(500);
	int64_t t0 = ms_now();
	control_server_stop(srv);
	CHECK(ms_now() - t0 < 3000);
	CHECK(pthread_join(t, NULL) == 0);
	CHECK(w.r == 0 && counted_to(w.text, 5));
	CHECK(__atomic_load_n(&stream_closes, __ATOMIC_SEQ_CST) == closes + 2);
	watcher_free(&w);
	close(slow);
}

static void test_streams(void)
{
	int ncalls = 0;
	struct control_handler h = { .call = fake_call, .arg = &ncalls, .stream = &fake_stream_ops };
	const char *mp = "/mnt/ctl-stream";
	char path[PATH_MAX], err[256];
	CHECK(control_socket_path(mp, geteuid(), path, sizeof(path)) == 0);
	struct watcher w = { .mp = mp, .verb = "count" };
	watcher_run(&w);
	CHECK(w.r == -ENOENT && strstr(w.err, "no veneer mount at /mnt/ctl-stream"));

	struct control_server *srv;
	CHECK(control_server_start(mp, geteuid(), &h, &srv) == 0);
	test_stream_client(mp);
	test_stream_limit(mp, path);
	/* a server without stream ops treats every verb as a call */
	control_server_stop(srv);
	struct control_handler plain = { .call = fake_call, .arg = &ncalls };
	CHECK(control_server_start(mp, geteuid(), &plain, &srv) == 0);
	CHECK(raw_stream(path, "count", err, sizeof(err)) == -EINVAL);
	control_server_stop(srv);
	test_stream_stop(mp, path, &h);
	CHECK(__atomic_load_n(&stream_opens, __ATOMIC_SEQ_CST) ==
	      __atomic_load_n(&stream_closes, __ATOMIC_SEQ_CST));
	/* open() learns who the client is: the streams' clients were this process */
	CHECK(__atomic_load_n(&stream_peer, __ATOMIC_SEQ_CST) == getpid());
}

int main(void)
{
	snprintf(base, sizeof(base), "%s/veneer-control-test-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(base)) {
		printf("1..0 # skip cannot create a temporary directory\n");
		return 77;
	}
	test_naming();
	test_make_dir();
	test_encode_decode();
	test_recv_malformed();
	test_server();
	test_streams();
	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
	CHECK(system(cmd) == 0);
	printf("1..%d\n", unit_count);
	return 0;
}
