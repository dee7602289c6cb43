/*
 * Unit test: the opcode table is whole and its facts agree with each other,
 * since the frontend, the manager, the lower and the trace all route by them.
 */
#include <string.h>

#include <veneer/filter.h>

#include "../tests/unit.h"

static bool has(enum vn_opcode op, unsigned int facts)
{
	return (vn_opcode_facts(op) & facts) == facts;
}

/* How many of the lower's routes (xattr, directory, open file) OP's facts name. */
static int routes(enum vn_opcode op)
{
	return has(op, VN_OPF_XATTR) + has(op, VN_OPF_DIR_HANDLE) + has(op, VN_OPF_FILE);
}

int main(void)
{
	for (int op = VN_OP_NONE + 1; op < VN_OP_COUNT; op++) {
		const char *name = vn_opcode_name(op);
		CHECK(name && *name && strcmp(name, "none") != 0);
		for (int other = VN_OP_NONE + 1; other < op; other++)
			CHECK(strcmp(vn_opcode_name(other), name) != 0);
		CHECK(routes(op) <= 1);
		if (has(op, VN_OPF_CREATES))
			CHECK(has(op, VN_OPF_ENTRY_OUT | VN_OPF_MUTATES));
		if (has(op, VN_OPF_OPENS) || has(op, VN_OPF_CLOSES))
			CHECK(has(op, VN_OPF_FILE) || has(op, VN_OPF_DIR_HANDLE));
		if (has(op, VN_OPF_DATA))
			CHECK(has(op, VN_OPF_FILE));
	}
	/* the sets the daemon depends on, spelled out once more */
	CHECK(has(VN_OP_CREATE, VN_OPF_NAMED | VN_OPF_CREATES | VN_OPF_OPENS | VN_OPF_FILE));
	CHECK(has(VN_OP_LINK, VN_OPF_NEW_NAME | VN_OPF_CREATES) && !has(VN_OP_LINK, VN_OPF_NAMED));
	CHECK(has(VN_OP_RENAME, VN_OPF_NAMED | VN_OPF_NEW_NAME | VN_OPF_MUTATES));
	CHECK(has(VN_OP_LOOKUP, VN_OPF_ENTRY_OUT) && !has(VN_OP_LOOKUP, VN_OPF_MUTATES));
	CHECK(has(VN_OP_LISTXATTR, VN_OPF_XATTR) && !has(VN_OP_LISTXATTR, VN_OPF_MUTATES));
	CHECK(has(VN_OP_RELEASEDIR, VN_OPF_CLOSES | VN_OPF_DIR_HANDLE));
	CHECK(has(VN_OP_WRITE, VN_OPF_DATA | VN_OPF_MUTATES) && !has(VN_OP_READ, VN_OPF_MUTATES));
	CHECK(vn_opcode_facts(VN_OP_NONE) == 0 && vn_opcode_facts(VN_OP_COUNT) == 0);
	CHECK(vn_opcode_name(VN_OP_COUNT) == NULL && vn_opcode_name((enum vn_opcode)-1) == NULL);
	printf("1..%d\n", unit_count);
	return 0;
}
