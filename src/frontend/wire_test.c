/*
 * Unit test of the custom I/O hook (wire.c): recorded request and reply
 * frames go through wire_read_frame and wire_write_frame over a socket
 * pair, as libfuse would pass them, and the bytes that reach the "kernel"
 * end are checked: the INIT reply asks for passthrough only when the
 * kernel offered it, OPEN and CREATE replies carry the backing id only for
 * the handles the frontend chose, and every other reply passes untouched.
 * Killpriv v2: asked for only when offered and without passthrough, and
 * the kill flags of WRITE, OPEN and CREATE requests are seen by the thread
 * that read them.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "frontend/wire.h"

#include "../tests/unit.h"

#define CHOSEN_FH 0x1234u
#define CHOSEN_ID 42

static int calls;

/* The frontend's side: only CHOSEN_FH passes through. */
int32_t frontend_open_backing(uint64_t fh)
{
	calls++;
	return fh == CHOSEN_FH ? CHOSEN_ID : 0;
}

static int sv[2];	/* sv[0]: the kernel's end; sv[1]: the daemon's */

/* The kernel sends a request frame; the daemon reads it through the hook. */
static void request(uint32_t opcode, uint64_t unique, const void *arg, size_t len)
{
	char frame[512], got[512];
	struct fuse_in_header h = { .len = (uint32_t)(sizeof(h) + len), .opcode = opcode,
				    .unique = unique, .nodeid = 1 };
	memcpy(frame, &h, sizeof(h));
	memcpy(frame + sizeof(h), arg, len);
	CHECK(write(sv[0], frame, h.len) == (ssize_t)h.len);
	CHECK(wire_read_frame(sv[1], got, sizeof(got), NULL) == (ssize_t)h.len);
	CHECK(memcmp(got, frame, h.len) == 0);	/* requests pass unchanged */
}

/* The daemon replies through the hook (header and payload as libfuse splits them). */
static size_t reply(uint64_t unique, int error, const void *payload, size_t len, void *out)
{
	struct fuse_out_header h = { .len = (uint32_t)(sizeof(h) + len), .error = error,
				     .unique = unique };
	char copy[512];
	memcpy(copy, payload, len);
	struct iovec iov[2] = { { &h, sizeof(h) }, { copy, len } };
	CHECK(wire_write_frame(sv[1], iov, len ? 2 : 1, NULL) == (ssize_t)h.len);
	char got[512];
	ssize_t n = read(sv[0], got, sizeof(got));
	CHECK(n == (ssize_t)h.len);
	memcpy(out, got + sizeof(h), len);
	return len;
}

static struct fuse_init_in init_in(uint64_t flags)
{
	struct fuse_init_in in = { .major = 7, .minor = 45, .max_readahead = 131072 };
	in.flags = (uint32_t)flags;
	in.flags2 = (uint32_t)(flags >> 32);
	return in;
}

/* libfuse 3.14's reply to INIT: flags it chose, flags2 and the rest zero. */
static struct vn_fuse_init_out init_out(uint32_t flags)
{
	struct vn_fuse_init_out o = { .major = 7, .minor = 38, .flags = flags, .max_write = 131072 };
	return o;
}

static void test_init_flags(void)
{
	char frame[sizeof(struct fuse_in_header) + sizeof(struct fuse_init_in)];
	struct fuse_in_header h = { .opcode = FUSE_INIT };
	struct fuse_init_in in = init_in(FUSE_INIT_EXT | FUSE_ASYNC_READ | VN_FUSE_PASSTHROUGH);
	memcpy(frame, &h, sizeof(h));
	memcpy(frame + sizeof(h), &in, sizeof(in));
	CHECK(wire_init_flags(frame, sizeof(frame)) ==
	      (FUSE_INIT_EXT | FUSE_ASYNC_READ | VN_FUSE_PASSTHROUGH));
	CHECK(wire_init_flags(frame, sizeof(frame) - 1) == 0);	/* truncated */
	in.flags &= ~(uint32_t)FUSE_INIT_EXT;	/* flags2 means nothing without INIT_EXT */
	memcpy(frame + sizeof(h), &in, sizeof(in));
	CHECK(wire_init_flags(frame, sizeof(frame)) == FUSE_ASYNC_READ);
	h.opcode = FUSE_LOOKUP;
	memcpy(frame, &h, sizeof(h));
	CHECK(wire_init_flags(frame, sizeof(frame)) == 0);
}

static void test_patch_init_refusals(void)
{
	const char *why = NULL;
	struct vn_fuse_init_out o = init_out(FUSE_ASYNC_READ);
	CHECK(!wire_patch_init(&o, sizeof(o), FUSE_INIT_EXT | FUSE_ASYNC_READ, &why));
	CHECK(why && strstr(why, "does not offer FUSE passthrough"));
	CHECK(o.flags2 == 0 && o.max_stack_depth == 0);	/* untouched */
	o = init_out(FUSE_WRITEBACK_CACHE);
	CHECK(!wire_patch_init(&o, sizeof(o), FUSE_INIT_EXT | VN_FUSE_PASSTHROUGH, &why));
	CHECK(strstr(why, "writeback"));
	CHECK(!wire_patch_init(&o, 24, FUSE_INIT_EXT | VN_FUSE_PASSTHROUGH, &why));
	CHECK(strstr(why, "older"));
}

/* A kernel without passthrough: nothing is patched, no open passes through. */
static void test_session_without_passthrough(void)
{
	wire_want(&(struct wire_wants){ .passthrough = true });
	struct fuse_init_in in = init_in(FUSE_INIT_EXT | FUSE_ASYNC_READ);
	request(FUSE_INIT, 2, &in, sizeof(in));
	struct vn_fuse_init_out o = init_out(FUSE_ASYNC_READ | FUSE_INIT_EXT), got;
	reply(2, 0, &o, sizeof(o), &got);
	CHECK(memcmp(&o, &got, sizeof(o)) == 0);
	CHECK(!wire_passthrough());
	CHECK(wire_passthrough_refusal() != NULL);

	struct fuse_open_in oi = { .flags = 0 };
	request(FUSE_OPEN, 4, &oi, sizeof(oi));
	struct vn_fuse_open_out oo = { .fh = CHOSEN_FH }, ogot;
	calls = 0;
	reply(4, 0, &oo, sizeof(oo), &ogot);
	CHECK(calls == 0 && memcmp(&oo, &ogot, sizeof(oo)) == 0);
}

static void test_session_with_passthrough(void)
{
	wire_want(&(struct wire_wants){ .passthrough = true, .killpriv = true });
	struct fuse_init_in in = init_in(FUSE_INIT_EXT | FUSE_ASYNC_READ | VN_FUSE_PASSTHROUGH);
	request(FUSE_INIT, 2, &in, sizeof(in));
	struct vn_fuse_init_out o = init_out(FUSE_ASYNC_READ), got;
	reply(2, 0, &o, sizeof(o), &got);
	CHECK(wire_passthrough());
	CHECK(got.flags == (FUSE_ASYNC_READ | FUSE_INIT_EXT));
	CHECK(((uint64_t)got.flags2 << 32) == VN_FUSE_PASSTHROUGH);
	CHECK(got.max_stack_depth == 1);
	CHECK(got.max_write == o.max_write && got.minor == o.minor);
	CHECK(!wire_killpriv());	/* offered, but passthrough excludes it */

	/* OPEN of the chosen handle: passthrough, and never with KEEP_CACHE */
	struct fuse_open_in oi = { .flags = 2 };
	request(FUSE_OPEN, 10, &oi, sizeof(oi));
	struct vn_fuse_open_out oo = { .fh = CHOSEN_FH, .open_flags = FOPEN_KEEP_CACHE }, ogot;
	reply(10, 0, &oo, sizeof(oo), &ogot);
	CHECK(ogot.fh == CHOSEN_FH && ogot.backing_id == CHOSEN_ID);
	CHECK(ogot.open_flags == VN_FOPEN_PASSTHROUGH);

	/* another handle: the frontend says 0, the reply is untouched */
	request(FUSE_OPEN, 12, &oi, sizeof(oi));
	oo.fh = 0x999;
	reply(12, 0, &oo, sizeof(oo), &ogot);
	CHECK(memcmp(&oo, &ogot, sizeof(oo)) == 0);

	/* CREATE: the open part follows the entry */
	char cin[sizeof(struct fuse_create_in) + 4] = { 0 };
	memcpy(cin + sizeof(struct fuse_create_in), "new", 4);
	request(FUSE_CREATE, 14, cin, sizeof(cin));
	char cout[sizeof(struct fuse_entry_out) + sizeof(struct vn_fuse_open_out)], cgot[sizeof(cout)];
	memset(cout, 0x5a, sizeof(struct fuse_entry_out));
	struct vn_fuse_open_out co = { .fh = CHOSEN_FH };
	memcpy(cout + sizeof(struct fuse_entry_out), &co, sizeof(co));
	reply(14, 0, cout, sizeof(cout), cgot);
	CHECK(memcmp(cgot, cout, sizeof(struct fuse_entry_out)) == 0);
	memcpy(&co, cgot + sizeof(struct fuse_entry_out), sizeof(co));
	CHECK(co.backing_id == CHOSEN_ID && (co.open_flags & VN_FOPEN_PASSTHROUGH));

	/* a failed OPEN carries no payload and is not patched */
	request(FUSE_OPEN, 16, &oi, sizeof(oi));
	calls = 0;
	char none[1];
	reply(16, -EACCES, none, 0, none);
	CHECK(calls == 0);

	/* a READ reply shaped like an open_out, of an untracked unique: untouched */
	struct vn_fuse_open_out data = { .fh = CHOSEN_FH };
	reply(18, 0, &data, sizeof(data), &ogot);
	CHECK(calls == 0 && memcmp(&data, &ogot, sizeof(data)) == 0);

	/* a unique is matched once: a second reply with it is not patched */
	reply(10, 0, &data, sizeof(data), &ogot);
	CHECK(calls == 0 && ogot.backing_id == 0);
}

static void test_patch_init_killpriv(void)
{
	struct vn_fuse_init_out o = init_out(FUSE_ASYNC_READ | FUSE_HANDLE_KILLPRIV);
	CHECK(!wire_patch_init_killpriv(&o, sizeof(o), FUSE_INIT_EXT | FUSE_ASYNC_READ));
	CHECK(o.flags == (FUSE_ASYNC_READ | FUSE_HANDLE_KILLPRIV));	/* untouched */
	CHECK(wire_patch_init_killpriv(&o, sizeof(o), FUSE_HANDLE_KILLPRIV_V2));
	CHECK(o.flags == (FUSE_ASYNC_READ | FUSE_HANDLE_KILLPRIV_V2));	/* v1 gone */
	CHECK(o.flags2 == 0);	/* a first-word flag: no FUSE_INIT_EXT needed */
}

static void test_patch_init_uring(void)
{
	size_t payload = 0;
	struct vn_fuse_init_out o = init_out(FUSE_ASYNC_READ);
	o.max_pages = 32;
	CHECK(!wire_patch_init_uring(&o, sizeof(o), FUSE_INIT_EXT | FUSE_ASYNC_READ, &payload));
	CHECK(o.flags == FUSE_ASYNC_READ && o.flags2 == 0 && payload == 0);	/* untouched */
	CHECK(!wire_patch_init_uring(&o, sizeof(o), VN_FUSE_OVER_IO_URING, &payload)); /* no INIT_EXT */
	CHECK(wire_patch_init_uring(&o, sizeof(o), FUSE_INIT_EXT | VN_FUSE_OVER_IO_URING, &payload));
	CHECK(o.flags == (FUSE_ASYNC_READ | FUSE_INIT_EXT));
	CHECK(((uint64_t)o.flags2 << 32) == VN_FUSE_OVER_IO_URING);
	CHECK(payload == 131072);	/* max_write, and 32 pages of 4 KiB */
	o.max_write = 4096;
	o.max_pages = 1;
	CHECK(wire_patch_init_uring(&o, sizeof(o), FUSE_INIT_EXT | VN_FUSE_OVER_IO_URING, &payload));
	CHECK(payload == 8192);	/* the kernel's floor, FUSE_MIN_READ_BUFFER */
	CHECK(!wire_patch_init_uring(&o, 24, FUSE_INIT_EXT | VN_FUSE_OVER_IO_URING, &payload));
}

/* The kill flags as the kernel sets them, read back on this thread. */
static void test_kill_flags(void)
{
	struct fuse_write_in w = { .size = 1, .write_flags = FUSE_WRITE_KILL_SUIDGID };
	request(FUSE_WRITE, 30, &w, sizeof(w));
	CHECK(wire_kills_suidgid());
	w.write_flags = FUSE_WRITE_CACHE;
	request(FUSE_WRITE, 32, &w, sizeof(w));
	CHECK(!wire_kills_suidgid());
	struct fuse_open_in oi = { .flags = 01001, .open_flags = FUSE_OPEN_KILL_SUIDGID };
	request(FUSE_OPEN, 34, &oi, sizeof(oi));
	CHECK(wire_kills_suidgid());
	request(FUSE_GETATTR, 36, &oi, sizeof(oi));	/* any other request clears it */
	CHECK(!wire_kills_suidgid());
	char cin[sizeof(struct fuse_create_in) + 2] = { 0 };
	struct fuse_create_in ci = { .flags = 01101, .open_flags = FUSE_OPEN_KILL_SUIDGID };
	memcpy(cin, &ci, sizeof(ci));
	request(FUSE_CREATE, 38, cin, sizeof(cin));
	CHECK(wire_kills_suidgid());
	request(FUSE_WRITE, 40, &w, sizeof(w) - 1);	/* truncated: no flag read past the end */
	CHECK(!wire_kills_suidgid());
	CHECK(wire_request_kills_suidgid(&w, 3) == false);
}

/* A kernel with killpriv v2 and no passthrough: INIT asks for killpriv only. */
static void test_session_with_killpriv(void)
{
	wire_want(&(struct wire_wants){ .killpriv = true });
	struct fuse_init_in in = init_in(FUSE_INIT_EXT | FUSE_ASYNC_READ | FUSE_HANDLE_KILLPRIV_V2);
	request(FUSE_INIT, 50, &in, sizeof(in));
	struct vn_fuse_init_out o = init_out(FUSE_ASYNC_READ), got;
	reply(50, 0, &o, sizeof(o), &got);
	CHECK(wire_killpriv());
	CHECK(got.flags == (FUSE_ASYNC_READ | FUSE_HANDLE_KILLPRIV_V2));
	CHECK(got.flags2 == 0 && got.max_stack_depth == 0);
}

int main(void)
{
	CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) == 0);
	test_init_flags();
	test_patch_init_refusals();
	test_session_without_passthrough();
	wire_shutdown();
	test_patch_init_killpriv();
	test_patch_init_uring();
	test_kill_flags();
	test_session_with_killpriv();
	wire_shutdown();	/* a new session */
	test_session_with_passthrough();
	wire_shutdown();
	printf("1..%d\n", unit_count);
	return 0;
}
