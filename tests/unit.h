/* A tiny TAP assertion header for unit tests (exit 77 = skip). */
#ifndef VENEER_UNIT_H
#define VENEER_UNIT_H

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

#endif
