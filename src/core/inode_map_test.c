/* Unit test: inode numbers stay unique across devices and in the fallback range. */
#include "core/inode_map.h"

#include "../tests/unit.h"

int main(void)
{
	struct inode_map *m = inode_map_new(10);
	CHECK(m != NULL);
	CHECK(inode_map_get(m, 10, 1234) == 1234);
	uint64_t a = inode_map_get(m, 11, 1234);
	uint64_t b = inode_map_get(m, 12, 1234);
	CHECK(a != 1234 && b != 1234 && a != b);
	CHECK(inode_map_get(m, 11, 1234) == a);
	CHECK(a >> 63 == 1);
	uint64_t big1 = inode_map_get(m, 11, (ino_t)1 << 50);
	uint64_t big2 = inode_map_get(m, 11, ((ino_t)1 << 50) + 1);
	uint64_t root_big = inode_map_get(m, 10, (ino_t)1 << 63);
	CHECK(big1 != big2 && big1 != root_big && big2 != root_big);
	CHECK(inode_map_get(m, 11, (ino_t)1 << 50) == big1);
	for (ino_t i = 0; i < 5000; i++)
		CHECK(inode_map_get(m, 13, ((ino_t)1 << 60) + i) != big1);

	/* layer sources: stable per key, distinct from devices and each other */
	uint64_t s1 = inode_map_get_source(m, 0xabcdef, 7);
	uint64_t s2 = inode_map_get_source(m, 0x123456, 7);
	CHECK(s1 != s2 && s1 != a && s2 != b);
	CHECK(inode_map_get_source(m, 0xabcdef, 7) == s1);
	CHECK(inode_map_get_source(m, 0xabcdef, 8) == s1 + 1);
	struct inode_map *m2 = inode_map_new(10);
	inode_map_get_source(m2, 0x123456, 1);	/* another attach order */
	CHECK(inode_map_get_source(m2, 0xabcdef, 7) == s1);
	inode_map_free(m2);
	uint64_t sbig = inode_map_get_source(m, 0xabcdef, (uint64_t)1 << 50);
	CHECK(sbig != big1 && sbig != s1 && inode_map_get_source(m, 0xabcdef, (uint64_t)1 << 50) == sbig);
	inode_map_free(m);
	printf("1..%d\n", unit_count);
	return 0;
}
