/* upgrade.h: the binary upgrade hand-over. On SIGUSR2 the master runs its binary again (possibly
 * a new one at the same path) and hands it every listening socket: the descriptors stay open
 * across execv() and are named in $REUSEPROXY_FDS ("slot:fd,..."; slot -1 shared, -2 metrics);
 * the new master reports ready on the pipe named in $REUSEPROXY_UPGRADE_FD, and the old one
 * then stops. Nothing is re-bound, so no connection is refused on the way. */
#ifndef RP_UPGRADE_H
#define RP_UPGRADE_H

#include <ev.h>
#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

#include "sockets.h"

struct upgrade {
    char exe[PATH_MAX]; /* the binary to run again */
    char **argv;
    pid_t pid; /* the new master, until it is ready; 0 when none */
    int fd;    /* ... and the pipe it reports readiness on, or -1 */
    ev_io io;
    int handover_fd;             /* we are the new master: tell the old one when ready, or -1 */
    int inherited_replay_fd;     /* ... and the old master's replay store (replay.h), or -1 */
    void (*on_ready)(void *arg); /* the new master is ready: this one should stop */
    void *arg;
};

/* One descriptor named in $REUSEPROXY_FDS. */
struct upgrade_fd {
    int slot;
    int fd;
};

/* Finds the binary (argv[0]) and, in a new master, the old master's readiness pipe and replay
 * store (the "replay=FD" entry, last in $REUSEPROXY_FDS). */
void upgrade_init(struct upgrade *u, char **argv, void (*on_ready)(void *arg), void *arg);
/* Starts the new master. child_reset runs first in the forked child (signal dispositions).
 * replay_fd (or -1) is the replay store's memfd, handed over as "replay=FD" so that a handshake
 * recorded before the upgrade is still refused after it. Refused (logged) while an upgrade
 * runs or the master stops. */
void upgrade_start(struct upgrade *u, struct ev_loop *loop, const struct socket_set *socks,
                   int replay_fd, bool stopping, void (*child_reset)(void));
/* A child was reaped: true if it was the new master (the upgrade then failed). */
bool upgrade_reaped(struct upgrade *u, pid_t pid);
/* In a new master, once every worker is ready: systemd learns the new main PID, then the old
 * master is told it may go. Does nothing in a master that was not started by an upgrade. */
void upgrade_handover_ready(struct upgrade *u);
/* Parses and clears $REUSEPROXY_FDS. *out (malloc'd, the caller frees it) gets one entry per
 * descriptor. Returns the count, 0 when the variable is absent, or -1 when out of memory. */
int upgrade_inherited_fds(struct upgrade_fd **out);

#endif
