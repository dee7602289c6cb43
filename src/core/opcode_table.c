/*
 * The one table of what each opcode is.  The frontend, the filter manager,
 * the lower and the filters (the built-in trace among them) ask it through
 * vn_opcode_name() and vn_opcode_facts() instead of keeping lists of their own.
 */
#include <veneer/filter.h>

#define NAMED VN_OPF_NAMED
#define NEW_NAME VN_OPF_NEW_NAME
#define ENTRY_OUT VN_OPF_ENTRY_OUT
#define CREATES VN_OPF_CREATES
#define OPENS VN_OPF_OPENS
#define CLOSES VN_OPF_CLOSES
#define MUTATES VN_OPF_MUTATES
#define FILE_OP VN_OPF_FILE
#define DIR_OP VN_OPF_DIR_HANDLE
#define XATTR VN_OPF_XATTR
#define DATA VN_OPF_DATA

static const struct opcode_info {
	const char *name;
	unsigned int facts;
} opcodes[VN_OP_COUNT] = {
	[VN_OP_NONE] = { "none", 0 },
	[VN_OP_LOOKUP] = { "lookup", NAMED | ENTRY_OUT },
	[VN_OP_GETATTR] = { "getattr", 0 },
	[VN_OP_SETATTR] = { "setattr", MUTATES },
	[VN_OP_READLINK] = { "readlink", 0 },
	[VN_OP_MKNOD] = { "mknod", NAMED | ENTRY_OUT | CREATES | MUTATES },
	[VN_OP_MKDIR] = { "mkdir", NAMED | ENTRY_OUT | CREATES | MUTATES },
	[VN_OP_UNLINK] = { "unlink", NAMED | MUTATES },
	[VN_OP_RMDIR] = { "rmdir", NAMED | MUTATES },
	[VN_OP_SYMLINK] = { "symlink", NAMED | ENTRY_OUT | CREATES | MUTATES },
	[VN_OP_RENAME] = { "rename", NAMED | NEW_NAME | MUTATES },
	[VN_OP_LINK] = { "link", NEW_NAME | ENTRY_OUT | CREATES | MUTATES },
	[VN_OP_OPEN] = { "open", OPENS | FILE_OP },
	[VN_OP_CREATE] = { "create", NAMED | ENTRY_OUT | CREATES | OPENS | MUTATES | FILE_OP },
	[VN_OP_READ] = { "read", FILE_OP | DATA },
	[VN_OP_WRITE] = { "write", MUTATES | FILE_OP | DATA },
	[VN_OP_FLUSH] = { "flush", CLOSES | FILE_OP },
	[VN_OP_RELEASE] = { "release", CLOSES | FILE_OP },
	[VN_OP_FSYNC] = { "fsync", FILE_OP },
	[VN_OP_OPENDIR] = { "opendir", OPENS | DIR_OP },
	[VN_OP_READDIR] = { "readdir", DIR_OP },
	[VN_OP_RELEASEDIR] = { "releasedir", CLOSES | DIR_OP },
	[VN_OP_FSYNCDIR] = { "fsyncdir", DIR_OP },
	[VN_OP_STATFS] = { "statfs", 0 },
	[VN_OP_SETXATTR] = { "setxattr", MUTATES | XATTR },
	[VN_OP_GETXATTR] = { "getxattr", XATTR },
	[VN_OP_LISTXATTR] = { "listxattr", XATTR },
	[VN_OP_REMOVEXATTR] = { "removexattr", MUTATES | XATTR },
	[VN_OP_ACCESS] = { "access", 0 },
	[VN_OP_FALLOCATE] = { "fallocate", MUTATES | FILE_OP },
	[VN_OP_COPY_FILE_RANGE] = { "copy_file_range", MUTATES | FILE_OP },
	[VN_OP_LSEEK] = { "lseek", FILE_OP },
};

static bool valid(enum vn_opcode op)
{
	return (int)op >= 0 && op < VN_OP_COUNT;
}

const char *vn_opcode_name(enum vn_opcode op)
{
	return valid(op) ? opcodes[op].name : NULL;
}

unsigned int vn_opcode_facts(enum vn_opcode op)
{
	return valid(op) ? opcodes[op].facts : 0;
}
