/* The built-in filters' argument lines; see filter_args.h. */
#include "common/filter_args.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int filter_args_each(const char *args, int (*fn)(const char *key, const char *value, void *arg),
		     void *arg)
{
	for (const char *p = args; p && *p;) {
		size_t len = strcspn(p, "\n");
		char *line = strndup(p, len);
		if (!line)
			return -ENOMEM;
		char *eq = strchr(line, '=');
		if (eq)
			*eq = '\0';
		int r = fn(line, eq ? eq + 1 : NULL, arg);
		free(line);
		if (r)
			return r;
		p += len + (p[len] == '\n');
	}
	return 0;
}
