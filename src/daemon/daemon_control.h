/*
 * The daemon's verbs on the control socket: status (layers and the trace
 * statistics), the
 * verbs of `veneer filter` (filter_control.h), and the streaming verbs:
 * trace (a watcher) and listen (a port's client).
 */
#ifndef VENEER_DAEMON_CONTROL_H
#define VENEER_DAEMON_CONTROL_H

#include "control/control.h"

extern const struct control_handler daemon_control_handler;

#endif
