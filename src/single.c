/* single.c: the single-process runner (workers: 0), see single.h. It shares the socket layer
 * and the worker loop with the master's workers, and nothing else: no fork, no reload (SIGHUP
 * and SIGUSR2 are ignored; restart the instance instead), no metrics server. */
#include "autoconfig.h"

#include "single.h"

#include <signal.h>
#include <stdlib.h>

#include "log.h"
#include "metrics.h"
#include "replay.h"
#include "sdnotify.h"
#include "sockets.h"
#include "worker.h"

int single_run(struct config *cfg)
{
    struct socket_set *socks = calloc(1, sizeof *socks);
    char err[512];

    if (!socks)
        return 1;
    /* No master to reload or upgrade: the worker loop logs SIGHUP and SIGUSR2 as ignored. Until
     * its watchers start they are blocked, not ignored: one sent as soon as the port listens
     * stays pending until worker_run() has its watchers and unblocks them, and is logged too. */
    sigset_t hold;
    sigemptyset(&hold);
    sigaddset(&hold, SIGHUP);
    sigaddset(&hold, SIGUSR2);
    sigprocmask(SIG_BLOCK, &hold, NULL);
    if (sockets_open(socks, cfg, 1, BALANCE_REUSEPORT, err, sizeof err) < 0) {
        log_error("%s", err);
        free(socks);
        return 1;
    }
    struct worker_env env = {.cfg = cfg, .slot = 0, .dispatch_fd = -1, .ready_fd = -1,
                             .parent_fd = -1, .control_fd = -1};
    worker_env_sockets(&env, socks, 0, BALANCE_REUSEPORT);
    struct metrics_shared *metrics = metrics_new_shared(1, worker_user_capacity(cfg), worker_port_capacity(cfg));
    env.replay = cfg->replay_protection ? replay_new_shared(cfg->replay_capacity) : NULL;
    if (!metrics || (cfg->replay_protection && !env.replay)) {
        log_error("cannot allocate the shared state");
        return 1;
    }
    env.stats = &metrics->worker[0];
    env.shared = metrics;
    env.run_prober = true; /* no master: the servers are probed from this process's loop */
    worker_user_slots(cfg, metrics);
    env.user_stats = metrics_user_counters(metrics, 0);
    env.port_stats = metrics_port_counters(metrics, 0);
    if (cfg->metrics_address)
        log_warn("metrics_address is served by the master; with workers: 0 it is not served");
    sdnotify_send("READY=1");
    log_info("single process accepting");
    int status = worker_run(&env);
    for (int a = 0; a < socks->naddrs; a++) /* the worker closed them when it began to drain */
        socks->tcp[0][a] = -1;
    sockets_close(socks);
    free(socks);
    if (env.replay)
        replay_free(env.replay);
    metrics_free_shared(metrics);
    return status;
}
