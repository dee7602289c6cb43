/* What a watcher asked for: the arguments of the "trace" request. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filters/trace/trace_internal.h"

/* Here, not with the records: the query parser (and its fuzzer) needs it alone. */
const char *trace_op_name(enum vn_opcode op)
{
	return op == TRACE_OP_FETCH ? "fetch" : vn_opcode_name(op);
}

static int parse_ops(const char *list, uint64_t *ret, char *err, size_t errlen)
{
	char *copy = strdup(list);
	if (!copy)
		return -ENOMEM;
	uint64_t ops = 0;
	char *save = NULL;
	int r = 0;
	for (char *name = strtok_r(copy, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
		enum vn_opcode op = VN_OP_NONE;
		for (int i = VN_OP_NONE + 1; i <= TRACE_OP_FETCH; i++)
			if (!strcmp(name, trace_op_name((enum vn_opcode)i)))
				op = (enum vn_opcode)i;
		if (op == VN_OP_NONE) {
			snprintf(err, errlen, "unknown operation '%s' (names as in the trace: lookup, "
				 "getattr, read, write, ..., fetch)", name);
			r = -EINVAL;
			break;
		}
		ops |= 1ULL << op;
	}
	free(copy);
	*ret = ops;
	return r;
}

static int parse_number(const char *s, const char *what, uint64_t *ret, char *err, size_t errlen)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-') {
		snprintf(err, errlen, "bad %s '%s'", what, s);
		return -EINVAL;
	}
	*ret = v;
	return 0;
}

int trace_query_parse(int nargs, char **args, struct trace_query *q, char *err, size_t errlen)
{
	memset(q, 0, sizeof(*q));
	if (nargs < 1 || (strcmp(args[0], "json") && strcmp(args[0], "text"))) {
		snprintf(err, errlen, "trace: the first argument is json or text");
		return -EINVAL;
	}
	q->json = !strcmp(args[0], "json");
	int r = 0;
	for (int i = 1; i < nargs && r == 0; i++) {
		const char *a = args[i];
		uint64_t v = 0;
		if (!strncmp(a, "ops=", 4)) {
			r = parse_ops(a + 4, &q->ops, err, errlen);
		} else if (!strncmp(a, "path=", 5)) {
			free(q->path_glob);
			q->path_glob = strdup(a + 5);
			r = q->path_glob ? 0 : -ENOMEM;
		} else if (!strncmp(a, "pid=", 4)) {
			r = parse_number(a + 4, "pid", &v, err, errlen);
			q->pid = (pid_t)v;
		} else if (!strcmp(a, "errors")) {
			q->errors_only = true;
		} else if (!strncmp(a, "slow=", 5)) {
			r = parse_number(a + 5, "slow", &q->slow_us, err, errlen);
		} else {
			snprintf(err, errlen, "trace: unknown argument '%s'", a);
			r = -EINVAL;
		}
	}
	if (r < 0)
		trace_query_clear(q);
	return r;
}

void trace_query_clear(struct trace_query *q)
{
	free(q->path_glob);
	q->path_glob = NULL;
}
