/*
 * The daemon's verbs on the control socket: attach and detach (the
 * virtualization filter), status (layers and the trace statistics), and
 * the streaming trace verb.
 */
#ifndef VENEER_DAEMON_CONTROL_H
#define VENEER_DAEMON_CONTROL_H

#include "control/control.h"

extern const struct control_handler daemon_control_handler;

#endif
