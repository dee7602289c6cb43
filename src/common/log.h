/*
 * Logging for the daemon and the CLI: one line per message, to stderr in the
 * foreground and to syslog once the daemon runs in the background.
 * Library code (core, lower) logs only at LOG_DEBUG; the daemon and CLI log
 * errors once, where they decide what to tell the user.
 */
#ifndef VENEER_LOG_H
#define VENEER_LOG_H

#include <stdbool.h>
#include <syslog.h>

void log_use_syslog(bool on);
void log_set_debug(bool on);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_err(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
