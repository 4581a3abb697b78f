/* master_private.h: the master's state, shared by master.c (set-up, signals, reload requests,
 * stop, binary upgrade), supervise.c (the workers: fork, readiness, deaths, restarts, and a
 * reload's switch-over or roll-back), master_live.c (a new configuration applied: live over the
 * control channels, or by supervise.c's replacement) and master_manager.c (the ss-manager API's
 * side of the master). Only those files include it. */
#ifndef RP_MASTER_PRIVATE_H
#define RP_MASTER_PRIVATE_H

#include <ev.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "cli.h"
#include "config.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "sockets.h"
#include "steer.h"
#include "upgrade.h"
#include "worker.h"

/* Old workers still draining, at most (a reload adds one per slot; reloads are serialized). */
#define MASTER_MAX_DRAINING 512

/* One worker process, from fork until it is reaped: the master never forgets a child it forked. */
struct master_child {
    pid_t pid;    /* 0: none */
    bool ready;   /* it wrote its ready byte */
    int ready_fd; /* read end of its ready pipe, or -1 */
    ev_io ready_io;
    ev_timer ready_timer; /* kills it when it is not ready in time */
    int dispatch_fd;      /* dispatch mode: the master's end of its socketpair, or -1 */
    int control_fd;       /* the master's end of its control channel (control.h), or -1 */
    ev_io control_io;     /* its answers */
    uint64_t generation;  /* the configuration generation it runs (forked with, or applied) */
    ev_tstamp started;
    struct master_slot *sl;
};

struct master_slot {
    /* child[cur] serves; during a reload child[!cur] is the new worker, which takes over only
     * when the new workers of every slot are ready. */
    struct master_child child[2];
    int cur;
    ev_timer restart; /* a replacement after a death or a failed fork, with backoff */
    int failures;     /* consecutive failed starts: fork failed, died unready or quickly */
    int index;
    struct master *m;
};

struct master {
    struct ev_loop *loop;
    struct config *cfg;
    struct config *prev_cfg; /* during a reload: the configuration to roll back to */
    const struct cli_options *cli;
    struct socket_set socks;
    struct master_slot *slots;
    int nslots;
    enum config_balance balance;
    ev_io accept_io[WORKER_MAX_LISTEN]; /* dispatch mode */
    struct listener_backoff accept_backoff[WORKER_MAX_LISTEN]; /* pauses accept_io on EMFILE */
    struct log_ratelimit rl_accept;
    int next_slot;
    struct replay_store *replay;
    struct metrics_shared *metrics;
    struct metrics_server *metrics_server;
    pid_t draining[MASTER_MAX_DRAINING];
    int ndraining;
    ev_io sig_io;
    ev_timer stop_timer;
    bool stopping, announced;
    bool reloading;      /* new workers are starting (prev_cfg is set) */
    bool reload_pending; /* a SIGHUP came during a reload: one more reload once it ends */
    uint64_t generation; /* of m->cfg: each new configuration counts one */
    bool live;           /* the workers are applying m->cfg live (prev_cfg is set) */
    ev_timer live_timer; /* ... and must all have answered by then */
    struct stat acl_seen; /* the ACL file the workers read, when they have one (st_ino != 0) */
    int exit_status;
    char last_failure[256]; /* why the last worker start failed, for the give-up message */
    struct upgrade upgrade; /* SIGUSR2, and the hand-over when this master is the new one */
    struct plugin *plugin;  /* the SIP003 plugin's supervisor (does nothing without one) */
    struct upstream_prober *prober; /* the local roles' server probes (upstream.h), or NULL */
    struct shared_store *users_store; /* pushes the users' totals to Redis (shared_store.h) */
    struct steer *steer;            /* the stall watch and steering program (steer.h) */
    struct manager_server *manager; /* the ss-manager API (manager.h), or NULL */
    struct socket_set *prev_socks;  /* during a reload that changes the ports: the old set */
    struct manager_ports *manager_initial; /* manager_state's ports, until the API opens */
};

/* master.c */
/* Sets up (or moves, or drops) the pushes of the users' totals to Redis for m->cfg. */
int master_users_store(struct master *m);
struct manager_ports;
struct config *master_load_config(const struct master *m, const struct manager_ports *ports,
                                  char *err, size_t errlen);
int master_apply(struct master *m, struct config *nc, char *err, size_t errlen);
/* A reload that changed the ports ended: switched, the old set's removed sockets close; rolled
 * back, the new set's new ones close and the old set comes back. Nothing otherwise. */
void master_sockets_settle(struct master *m, bool switched);
void master_stop(struct master *m, const char *why, bool handover);
void master_check_done(struct master *m);
void master_reload(struct master *m);
void master_signals_reset_in_child(void);

/* master_manager.c: the ss-manager API in the master */
/* Before the sockets are opened: reads manager_state and, when it holds ports, makes m->cfg the
 * file's configuration with them. Returns 0, or -1 with the reason. */
int master_manager_load(struct master *m, char *err, size_t errlen);
/* Opens manager_address in the master's loop (nothing without one). Returns 0 or -1. */
int master_manager_start(struct master *m, char *err, size_t errlen);
/* The API's ports now (NULL without the API), for a reload. */
const struct manager_ports *master_manager_ports(const struct master *m);
/* m->cfg was replaced: an "add" without a method takes the new file's. */
void master_manager_reconfigured(struct master *m);
void master_manager_free(struct master *m);

/* master_live.c */
/* Makes nc (validated and preflighted, its listen settings unchanged) the configuration: applied
 * live when config_live_blocker() allows it, else by replacing every worker (supervise_reload).
 * Takes nc over. The one entry point of SIGHUP's reload and the manager API. */
void master_apply_config(struct master *m, struct config *nc);
/* A child's control channel is readable (its answers). */
void master_live_read_cb(struct ev_loop *loop, ev_io *io, int revents);
/* A child went away or a reload step ended: finishes a live apply that no longer waits. */
void master_live_check(struct master *m);
void master_live_stop(struct master *m);
/* Notes which ACL file the workers about to start will read (at start and at each replacement):
 * a live apply leaves their rules as they are, so a file changed since needs new workers. */
void master_live_note_acl(struct master *m);

/* supervise.c */
void supervise_init(struct master *m);
/* Starts the serving worker of every slot (at start-up). */
void supervise_start(struct master *m);
/* Starts a new worker in every slot for m->cfg; the old ones stop once all are ready, or the
 * new ones go and m->prev_cfg comes back if one fails (supervise_rollback). */
void supervise_reload(struct master *m);
/* Reaps every child that exited and acts on it (SIGCHLD). */
void supervise_reap(struct master *m);
/* Signals every worker (serving, starting and draining) and stops the timers. */
void supervise_signal_all(struct master *m, int sig, bool stop_timers);
/* True while some worker process (serving, starting or draining) still runs. */
bool supervise_any_child(const struct master *m);
/* The dispatch socket of slot i's serving worker, or -1. */
int supervise_dispatch_fd(const struct master *m, int i);
void supervise_free(struct master *m);

#endif
