/*
 * The fuzz targets' stand-in for src/common/log.c: the same functions,
 * but messages are only formatted (so a bad format argument still shows
 * under the sanitizers) and dropped, because a damaged image logs on
 * nearly every input.  VENEER_FUZZ_LOG=1 prints them to stderr, for
 * looking at one reproducer.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include <veneer/filter.h>

#include "common/log.h"

static int verbose = -1;

void log_use_syslog(bool on)
{
	(void)on;
}

void log_set_debug(bool on)
{
	(void)on;
}

static void log_vmsg(int level, const char *fmt, va_list ap)
{
	char line[1024];
	vsnprintf(line, sizeof(line), fmt, ap);
	if (verbose < 0) {
		const char *v = getenv("VENEER_FUZZ_LOG");
		verbose = v && *v == '1';
	}
	if (verbose)
		fprintf(stderr, "veneer[%d]: %s\n", level, line);
}

void log_msg(int level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

void vn_log(int level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}
