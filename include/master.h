/* master.h: the process model. The master opens every socket and the shared memory once, forks
 * the workers, replaces the ones that die, reloads on SIGHUP, upgrades its own binary on
 * SIGUSR2, stops gracefully on SIGTERM, and talks to systemd (sd_notify). */
#ifndef RP_MASTER_H
#define RP_MASTER_H

#include "cli.h"
#include "config.h"

/* Runs the master with cfg->workers workers until it stops. cfg is owned by the master from
 * here on (it is replaced on reload). argv is kept for binary upgrades. Returns the exit
 * status. */
int master_run(struct config *cfg, const struct cli_options *cli, char **argv);

/* workers: 0: one process, no master, its own sockets (SO_REUSEPORT when reuse_port is set, so
 * independent instances can share the port). Returns the exit status. */
int master_run_single(struct config *cfg);

/* Sends a message to systemd's $NOTIFY_SOCKET if there is one (sd_notify(3) protocol). */
void master_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
