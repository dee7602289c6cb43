/* A tiny TAP assertion header for unit tests (exit 77 = skip). */
#ifndef VENEER_UNIT_H
#define VENEER_UNIT_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static int unit_count;

#define CHECK(cond)                                                                      \
	do {                                                                             \
		unit_count++;                                                            \
		if (!(cond)) {                                                           \
			printf("not ok %d - %s:%d: %s\n", unit_count, __FILE__, __LINE__, \
			       #cond);                                                   \
			exit(1);                                                         \
		}                                                                        \
		printf("ok %d - %s\n", unit_count, #cond);                               \
	} while (0)

/* Runs a shell command; its failure fails the test (scripts/check-programs.py reads these). */
static inline void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	int r = system(cmd);
	if (r != 0) {
		printf("not ok - command failed (%d): %s\n", r, cmd);
		exit(1);
	}
}

#endif
