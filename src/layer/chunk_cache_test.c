/*
 * Unit test of the on-disk chunk cache (chunk_cache.c): chunks read back
 * as stored, a truncated or dropped chunk is a miss, two images share one
 * bound, eviction removes the least recently used chunks first (a hit
 * counts as a use), a chunk open for reading survives eviction, the
 * descriptors kept of chunks read (still right after another process
 * unlinked the file, forgotten when dropped or found short, more chunks
 * than kept descriptors, threads reading, advising, dropping and storing
 * the same chunks at once), a part of a chunk read alone, advice (a miss
 * for a missing chunk, a kept descriptor for a cached one), and the
 * image's size is kept for the next open.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "layer/chunk_cache.h"

#include "../tests/unit.h"

#define LEN 4096

static char dir[256];

static void fill(unsigned char *buf, unsigned seed)
{
	for (size_t i = 0; i < LEN; i++)
		buf[i] = (unsigned char)(seed * 31 + i * 7);
}

static bool has(struct chunk_cache *c, uint64_t idx, unsigned seed)
{
	unsigned char got[LEN], want[LEN];
	fill(want, seed);
	return chunk_cache_get(c, idx, got, LEN) == 0 && !memcmp(got, want, LEN);
}

static void put(struct chunk_cache *c, uint64_t idx, unsigned seed)
{
	unsigned char buf[LEN];
	fill(buf, seed);
	chunk_cache_put(c, idx, buf, LEN);
}

/* Sets a chunk's mtime, which is what eviction orders by. */
static void age(const char *key, uint64_t idx, time_t when)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s/%llx", dir, key, (unsigned long long)idx);
	struct timespec t[2] = { { when, 0 }, { when, 0 } };
	CHECK(utimensat(AT_FDCWD, path, t, 0) == 0);
}

/* Threads at once: reads (whole and in part) and advice of 240 chunks
 * (more than the kept descriptors), with drops and puts of the same
 * chunks; a read gives the right bytes or a miss, never others. */
#define RACE_CHUNKS 240u
/* Chunks of the single-thread part: more than the 192 kept descriptors. */
#define MANY 250u
static struct chunk_cache *race_cache;
static atomic_uint race_wrong, race_hits;

static void *race(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;
	unsigned char got[LEN], want[LEN];
	for (unsigned n = 0; n < 3000; n++) {
		seed = seed * 1103515245u + 12345u;
		unsigned idx = (seed >> 8) % RACE_CHUNKS;
		fill(want, 500 + idx);
		size_t part = (seed >> 4) % LEN;
		if ((seed >> 20) % 16 == 0) {
			chunk_cache_drop(race_cache, idx);
			chunk_cache_put(race_cache, idx, want, LEN);
		} else if ((seed >> 20) % 16 == 1) {
			chunk_cache_advise(race_cache, (idx + 1) % RACE_CHUNKS);
		} else if ((seed >> 20) % 16 == 2) {
			if (chunk_cache_read(race_cache, idx, part, got, LEN - part) == 0) {
				atomic_fetch_add(&race_hits, 1);
				if (memcmp(got, want + part, LEN - part))
					atomic_fetch_add(&race_wrong, 1);
			}
		} else if (chunk_cache_get(race_cache, idx, got, LEN) == 0) {
			atomic_fetch_add(&race_hits, 1);
			if (memcmp(got, want, LEN))
				atomic_fetch_add(&race_wrong, 1);
		}
	}
	return NULL;
}

static void race_test(void)
{
	char err[512], racedir[300];
	snprintf(racedir, sizeof(racedir), "/tmp/veneer-chunk-cache-%d/race", (int)getpid());
	CHECK(chunk_cache_open(racedir, "dddd", 1000 * LEN, true, &race_cache, err,
			       sizeof(err)) == 0);
	unsigned char buf[LEN];
	for (unsigned i = 0; i < RACE_CHUNKS; i++) {
		fill(buf, 500 + i);
		chunk_cache_put(race_cache, i, buf, LEN);
	}
	pthread_t t[4];
	for (uintptr_t i = 0; i < 4; i++)
		CHECK(pthread_create(&t[i], NULL, race, (void *)(i + 1)) == 0);
	for (unsigned i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	CHECK(atomic_load(&race_wrong) == 0);
	CHECK(atomic_load(&race_hits) > 0);
	chunk_cache_free(race_cache);
}

int main(void)
{
	char err[512];
	struct chunk_cache *a, *b;
	snprintf(dir, sizeof(dir), "/tmp/veneer-chunk-cache-%d/cache", (int)getpid());

	/* a limit of 10 chunks, over both images */
	CHECK(chunk_cache_open(dir, "aaaa", 10 * LEN, false, &a, err, sizeof(err)) == -ENOENT);
	CHECK(chunk_cache_open(dir, "aaaa", 10 * LEN, true, &a, err, sizeof(err)) == 0);
	CHECK(chunk_cache_open(dir, "bbbb", 10 * LEN, true, &b, err, sizeof(err)) == 0);
	CHECK(!strcmp(chunk_cache_dir(a), dir));

	put(a, 0, 1);
	put(a, 0x1f, 2);
	CHECK(has(a, 0, 1) && has(a, 0x1f, 2));
	CHECK(!has(b, 0, 1));			/* images are apart */
	unsigned char buf[LEN];
	CHECK(chunk_cache_get(a, 5, buf, LEN) == -ENOENT);
	CHECK(chunk_cache_get(a, 0, buf, LEN + 1) == -ENOENT);	/* shorter: a miss */

	/* a truncated file is a miss; a second put does not replace a chunk */
	char path[512];
	snprintf(path, sizeof(path), "%s/aaaa/1f", dir);
	CHECK(truncate(path, 100) == 0);
	CHECK(!has(a, 0x1f, 2));
	chunk_cache_drop(a, 0x1f);
	put(a, 0x1f, 2);
	put(a, 0x1f, 3);
	CHECK(has(a, 0x1f, 2));
	chunk_cache_drop(a, 0x1f);
	CHECK(!has(a, 0x1f, 2));
	CHECK(chunk_cache_bytes(a) >= LEN);

	/* eviction: 8 chunks aged 1000+i, then a hit makes the oldest the newest */
	chunk_cache_drop(a, 0);
	for (unsigned i = 0; i < 8; i++) {
		put(i % 2 ? b : a, i, 10 + i);
		age(i % 2 ? "bbbb" : "aaaa", i, 1000 + i);
	}
	CHECK(has(a, 0, 10));			/* chunk 0 is now the most recently used */
	int held = open(path, O_RDONLY);	/* not there: the dropped 0x1f */
	CHECK(held < 0);
	snprintf(path, sizeof(path), "%s/bbbb/1", dir);
	held = open(path, O_RDONLY);		/* chunk 1 of b, about to be evicted */
	CHECK(held >= 0);
	for (unsigned i = 8; i < 11; i++)	/* 11 chunks > 10: eviction down to 9 */
		put(a, i, 10 + i);
	CHECK(has(a, 0, 10));
	CHECK(!has(b, 1, 11) && !has(a, 2, 12));	/* the two oldest went */
	CHECK(has(b, 3, 13));
	CHECK(has(a, 10, 20));
	CHECK(chunk_cache_bytes(a) <= 10 * LEN);
	CHECK(pread(held, buf, LEN, 0) == LEN);	/* a reader of an evicted chunk keeps it */
	close(held);

	/* kept descriptors: a chunk read once still reads after its file was
	 * unlinked by another process's eviction, and is forgotten when dropped */
	snprintf(path, sizeof(path), "%s/aaaa/a", dir);
	CHECK(has(a, 10, 20));
	CHECK(unlink(path) == 0);
	CHECK(has(a, 10, 20));
	chunk_cache_drop(a, 10);
	CHECK(!has(a, 10, 20));
	/* ...and when its file was cut short in place, then read anew */
	put(a, 10, 21);
	CHECK(has(a, 10, 21));
	CHECK(truncate(path, 10) == 0);
	CHECK(!has(a, 10, 21));
	chunk_cache_drop(a, 10);
	put(a, 10, 22);
	CHECK(has(a, 10, 22));
	/* more chunks than kept descriptors, read twice over: each right */
	struct chunk_cache *many;
	char manydir[300];	/* a directory of its own: its chunks count against no other bound */
	snprintf(manydir, sizeof(manydir), "/tmp/veneer-chunk-cache-%d/many", (int)getpid());
	CHECK(chunk_cache_open(manydir, "cccc", 600 * LEN, true, &many, err, sizeof(err)) == 0);
	bool all = true;
	for (unsigned i = 0; i < MANY; i++)
		put(many, i, 100 + i);
	for (unsigned round = 0; round < 2; round++)
		for (unsigned i = 0; i < MANY; i++)
			all = all && has(many, i, 100 + i);
	CHECK(all);
	/* a part of a chunk; past its end, a miss */
	unsigned char want[LEN];
	fill(want, 100 + 7);
	CHECK(chunk_cache_read(many, 7, 1000, buf, 96) == 0 && !memcmp(buf, want + 1000, 96));
	CHECK(chunk_cache_read(many, 7, LEN - 10, buf, 11) == -ENOENT);
	CHECK(chunk_cache_read(many, MANY, 0, buf, 1) == -ENOENT);
	/* advice: a missing chunk is a miss; an advised chunk reads right
	 * from its kept descriptor, even once its file is gone */
	CHECK(chunk_cache_advise(many, MANY) == -ENOENT);
	put(many, MANY, 300);
	CHECK(chunk_cache_advise(many, MANY) == 0);
	snprintf(path, sizeof(path), "/tmp/veneer-chunk-cache-%d/many/cccc/%x", (int)getpid(), MANY);
	CHECK(unlink(path) == 0);
	CHECK(has(many, MANY, 300));
	chunk_cache_drop(many, MANY);
	CHECK(!has(many, MANY, 300) && chunk_cache_advise(many, MANY) == -ENOENT);
	chunk_cache_free(many);

	race_test();

	/* the image's size, for attaching while the server is down */
	uint64_t size;
	CHECK(chunk_cache_get_size(a, &size) == -ENOENT);
	chunk_cache_set_size(a, 123456789);
	chunk_cache_set_size(a, 987654321);
	CHECK(chunk_cache_get_size(a, &size) == 0 && size == 987654321);
	chunk_cache_free(a);
	CHECK(chunk_cache_open(dir, "aaaa", 10 * LEN, false, &a, err, sizeof(err)) == 0);
	CHECK(chunk_cache_get_size(a, &size) == 0 && size == 987654321 && has(a, 0, 10));

	chunk_cache_free(a);
	chunk_cache_free(b);
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf /tmp/veneer-chunk-cache-%d", (int)getpid());
	CHECK(system(cmd) == 0);
	printf("1..%d\n", unit_count);
	return 0;
}
