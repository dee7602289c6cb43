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
	inode_map_free(m);
	printf("1..%d\n", unit_count);
	return 0;
}
