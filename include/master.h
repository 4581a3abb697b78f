/* master.h: the process model. The master opens every socket and the shared memory once, forks
 * the workers, replaces the ones that die, reloads on SIGHUP, stops gracefully on SIGTERM. The
 * binary upgrade on SIGUSR2 is in upgrade.h, systemd's protocols in sdnotify.h, the
 * single-process runner (workers: 0) in single.h. */
#ifndef RP_MASTER_H
#define RP_MASTER_H

#include "cli.h"
#include "config.h"

/* Runs the master with cfg->workers workers until it stops. cfg is owned by the master from
 * here on (it is replaced on reload). argv is kept for binary upgrades. Returns the exit
 * status. */
int master_run(struct config *cfg, const struct cli_options *cli, char **argv);

#endif
