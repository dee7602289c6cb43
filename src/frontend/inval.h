/* The invalidation thread (inval.c): started once the session is mounted. */
#ifndef VENEER_INVAL_H
#define VENEER_INVAL_H

#include "frontend/frontend.h"

int inval_start(struct fuse_session *se);	/* 0 or -errno */
/* Drops what is still queued and joins the thread; before unmounting. */
void inval_stop(void);

#endif
