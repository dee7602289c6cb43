/* One-line logging to stderr or syslog; see log.h. */
#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>

#include <veneer/filter.h>

static bool use_syslog;
static bool debug_on;

void log_use_syslog(bool on)
{
	if (on && !use_syslog)
		openlog("veneer", LOG_PID, LOG_DAEMON);
	use_syslog = on;
}

void log_set_debug(bool on)
{
	debug_on = on;
}

static void log_vmsg(int level, const char *fmt, va_list ap)
{
	if (level == LOG_DEBUG && !debug_on)
		return;
	if (use_syslog) {
		vsyslog(level, fmt, ap);
		return;
	}
	char line[1024];
	vsnprintf(line, sizeof(line), fmt, ap);
	fprintf(stderr, "veneer: %s\n", line);
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
