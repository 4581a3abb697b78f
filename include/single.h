/* single.h: the single-process runner (workers: 0): no master, no fork, one worker loop on its
 * own sockets. */
#ifndef RP_SINGLE_H
#define RP_SINGLE_H

#include "config.h"

/* workers: 0: one process, no master, its own sockets (SO_REUSEPORT when reuse_port is set, so
 * independent instances can share the port). Returns the exit status. */
int single_run(struct config *cfg);

#endif
