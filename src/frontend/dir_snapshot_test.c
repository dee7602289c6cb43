/* Unit test: listing offsets come from names, so listings of one directory agree. */
#include "frontend/dir_snapshot.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/objects.h"
#include "../tests/unit.h"

/* A listing of ".", ".." and name-I for I in [from, to) not divisible by SKIP (0: none). */
static struct vn_dirlist *listing(int from, int to, int skip, const char *prefix)
{
	struct vn_dirlist *l = calloc(1, sizeof(*l));
	CHECK(l && vn_dirlist_add(l, "..", 1, S_IFDIR) == 0 && vn_dirlist_add(l, ".", 2, S_IFDIR) == 0);
	char name[64];
	for (int i = from; i < to; i++) {
		if (skip && i % skip == 0)
			continue;
		snprintf(name, sizeof(name), "%s-%d", prefix, i);
		CHECK(vn_dirlist_add(l, name, (ino_t)i + 10, S_IFREG) == 0);
	}
	return l;
}

static off_t offset_of(const struct dir_snapshot *s, const char *name)
{
	for (size_t i = 0; i < s->list->count; i++)
		if (!strcmp(s->list->entries[i].name, name))
			return s->offs[i];
	return -1;
}

static void ordered_and_dotted(void)
{
	struct dir_snapshot *s = dir_snapshot_new(listing(0, 3000, 0, "f"));
	CHECK(s && s->list->count == 3002);
	CHECK(!strcmp(s->list->entries[0].name, ".") && s->offs[0] == 1);
	CHECK(!strcmp(s->list->entries[1].name, "..") && s->offs[1] == 2);
	int increasing = 1;
	for (size_t i = 1; i < s->list->count; i++)
		increasing &= s->offs[i] > s->offs[i - 1];
	CHECK(increasing);
	CHECK(dir_snapshot_seek(s, 0) == 0);
	CHECK(dir_snapshot_seek(s, 2) == 2);
	CHECK(dir_snapshot_seek(s, s->offs[100]) == 101);
	CHECK(dir_snapshot_seek(s, s->offs[100] - 1) == 100);
	CHECK(dir_snapshot_seek(s, s->offs[3001]) == 3002);
	dir_snapshot_put(s);
}

/* A reader continues in a newer listing: every name present in both is seen once. */
static void continues_across_listings(void)
{
	struct dir_snapshot *a = dir_snapshot_new(listing(0, 2000, 0, "f"));
	struct dir_snapshot *b = dir_snapshot_new(listing(0, 2300, 7, "f"));	/* removed, added */
	CHECK(a && b);
	CHECK(offset_of(a, "f-1") == offset_of(b, "f-1"));
	CHECK(offset_of(a, "f-1999") == offset_of(b, "f-1999"));
	for (size_t cut = 0; cut <= a->list->count; cut += 97) {
		char *seen = calloc(2300, 1);
		int twice = 0;
		for (size_t i = 0; i < cut; i++) {
			int n;
			if (sscanf(a->list->entries[i].name, "f-%d", &n) == 1)
				twice |= seen[n]++;
		}
		off_t pos = cut ? a->offs[cut - 1] : 0;
		for (size_t i = dir_snapshot_seek(b, pos); i < b->list->count; i++) {
			int n;
			if (sscanf(b->list->entries[i].name, "f-%d", &n) == 1)
				twice |= seen[n]++;
		}
		int missing = 0;
		for (int n = 0; n < 2000; n++)
			missing += n % 7 != 0 && !seen[n];	/* stayed in the directory */
		CHECK(!twice && !missing);
		free(seen);
	}
	dir_snapshot_put(a);
	dir_snapshot_put(b);
}

/* Equal hashes (here: the same name twice) still get distinct, increasing offsets. */
static void collisions_stay_distinct(void)
{
	struct vn_dirlist *l = listing(0, 10, 0, "g");
	CHECK(vn_dirlist_add(l, "g-3", 99, S_IFREG) == 0 && vn_dirlist_add(l, "g-3", 98, S_IFREG) == 0);
	struct dir_snapshot *s = dir_snapshot_new(l);
	int increasing = 1;
	for (size_t i = 1; i < s->list->count; i++)
		increasing &= s->offs[i] > s->offs[i - 1];
	CHECK(s->list->count == 14 && increasing);
	dir_snapshot_put(s);
}

static void empty_and_shared(void)
{
	struct dir_snapshot *s = dir_snapshot_new(calloc(1, sizeof(struct vn_dirlist)));
	CHECK(s && s->list->count == 0 && dir_snapshot_seek(s, 0) == 0);
	CHECK(dir_snapshot_get(s) == s && s->refs == 2);
	dir_snapshot_put(s);
	CHECK(s->refs == 1);
	dir_snapshot_put(s);
	dir_snapshot_put(NULL);
	CHECK(dir_snapshot_get(NULL) == NULL);
}

int main(void)
{
	ordered_and_dotted();
	continues_across_listings();
	collisions_stay_distinct();
	empty_and_shared();
	printf("1..%d\n", unit_count);
	return 0;
}
