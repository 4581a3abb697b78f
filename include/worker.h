/* worker.h: one worker process: its libev loop and everything it owns (listeners, resolver,
 * sessions, UDP relays, timers), set up from what the master hands it before fork. In
 * single-process mode (workers: 0) the same code runs without a master. */
#ifndef RP_WORKER_H
#define RP_WORKER_H

#include <stdbool.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "buf.h"
#include "config.h"
#include "crypto.h"
#include "log.h"
#include "metrics.h"
#include "netaddr.h"
#include "proto.h"

struct ev_loop;
struct resolver;
struct acl;
struct relay_addrs;
struct replay_store;
struct udp_relay;
struct listener;
struct session;
struct handshake_limit;
struct worker_live;
struct control_users;
struct socket_set;

/* A worker's port: its protocol context (method, key set, users) and its counters. Each
 * listener and UDP relay serves one port; a session uses its listener's. */
struct worker_port {
    const struct config_port *cfg;
    struct proto_ctx proto;          /* the protocol the method runs, its key set (keys) */
    struct crypto_key *keys;         /* the key set (struct proto_ctx says in which order) */
    const char **key_names;          /* the users' names, beside keys */
    int *key_slots;                  /* keys[k]'s user slot in user_stats, or -1 */
    /* Live user changes (worker_users.c): keys stay at their index for the worker's life, so
     * open sessions and UDP associations keep theirs; a removed or re-keyed user's key is
     * retired (key_retired[k], since key_retired_at[k]), a new user's key appended. */
    bool *key_retired;
    double *key_retired_at;
    size_t keys_first;               /* keys before the users' (the server's own key) */
    struct metrics_port *stats;      /* this port's counters in this worker, or NULL */
    /* Ports changed live (worker_ports.c): a removed port keeps its entry while sessions or
     * UDP relays point into it (refs counts them) and its sessions close drain_timeout after
     * removed_at; then the entry is vacant (its key set freed) and the next added port takes
     * it. An added port owns its cfg. */
    bool removed;
    bool vacant;
    double removed_at;
    unsigned refs; /* open sessions (relay.c) and UDP relays (udp_relay.c) on this entry */
    struct config_port *own_cfg;
};

/* Everything the master sets up before fork and passes to one worker. */
struct worker_env {
    const struct config *cfg;
    int slot;                        /* 0..workers-1 */
    int tcp[WORKER_MAX_LISTEN];      /* listening sockets this worker accepts on; worker_run
                                      * closes them (and dispatch_fd) when it drains */
    int tcp_port[WORKER_MAX_LISTEN]; /* the port (index in cfg->ports) each serves */
    int ntcp;
    int udp[WORKER_MAX_LISTEN];      /* bound UDP sockets this worker serves */
    int udp_port[WORKER_MAX_LISTEN];
    int nudp;
    int dispatch_fd;                 /* dispatch mode: unix socket carrying accepted fds, or -1 */
    bool shared_accept;              /* tcp[] are shared by every worker (balance "shared") */
    struct replay_store *replay;     /* NULL when replay protection is off */
    struct metrics_worker *stats;    /* this slot's shared counters */
    struct metrics_user *user_stats; /* this slot's per-user counters (metrics_user_counters) */
    struct metrics_port *port_stats; /* this slot's per-port counters (metrics_port_counters) */
    int ready_fd;                    /* one byte is written here once accepting, or -1 */
    int parent_fd;                   /* reads EOF when the master dies, or -1 (no master) */
    pid_t master_pid;                /* the master, to notice it died before the worker watched */
    struct metrics_shared *shared;   /* the whole shared block: the servers' probe results */
    bool run_prober;                 /* workers: 0: this process probes the servers itself */
    int control_fd;                  /* the master's control channel (control.h), or -1 */
};

/* The per-process context every module of a worker is handed. */
struct worker {
    struct ev_loop *loop;
    const struct config *cfg;
    int slot;
    struct crypto_key key;           /* the master key (the local roles': their server's) */
    struct worker_port *ports;       /* cfg->ports, each with its protocol context, then the
                                      * ports added live (room for ports_cap: never moved) */
    int nports;                      /* entries used so far, vacant ones included */
    int ports_cap;                   /* entries ports has room for (worker_ports_table_size) */
    struct metrics_port *port_stats; /* this slot's per-port counters, or NULL */
    bool shared_accept;              /* its TCP listeners are balance "shared" ones */
    struct worker_new_fds *new_fds;  /* sockets of ports about to be added live, or NULL */
    struct resolver *resolver;
    struct acl *acl;                 /* server: limits; local, tunnel: routes; or NULL */
    struct handshake_limit *hs_limit; /* max_handshakes_per_source, or NULL (no limit) */
    struct relay_addrs *own_addrs;   /* server: its listening endpoints, refused as targets */
    struct replay_store *replay;
    struct shared_store *shared;     /* "shared_store" (Redis), or NULL */
    struct metrics_worker *stats;
    struct metrics_user *user_stats; /* per-user counters, indexed by key_slots[], or NULL */
    struct worker_live *live;        /* the control channel and its state, or NULL */
    struct buf_pool pool;           /* RELAY_BUF_CAP buffers */
    struct buf_pool bulk_pool;      /* RELAY_BULK_CAP buffers, for bulk directions */
    struct buf_pool stall_pool;     /* RELAY_STALL_CAP buffers, for stalled directions */
    struct netaddr_target server;   /* local and tunnel roles: the shadowsocks server (TCP), or
                                     * the SIP003 plugin's loopback port */
    struct netaddr_target udp_server; /* where their UDP goes: the server, or the plugin's port
                                       * with "plugin_mode": "tcp_and_udp" */
    struct netaddr_target tunnel;    /* tunnel role: the fixed target */
    /* Local and tunnel roles: their servers (several: failover, upstream.h). Each has its own
     * method and key, so its own protocol context. */
    struct proto_ctx upstream_proto[CONFIG_MAX_SERVERS];
    struct netaddr_target upstream_target[CONFIG_MAX_SERVERS];
    int nupstream;
    struct metrics_upstream *upstream_stats; /* shared probe results and counters */
    struct metrics_upstream upstream_local[CONFIG_MAX_SERVERS]; /* without a shared block */
    uint64_t upstream_down[CONFIG_MAX_SERVERS]; /* failed here: upstream_pick's down[] */
    unsigned upstream_rr;                       /* upstream_pick's turn */
    struct upstream_prober *prober;             /* workers: 0 only (env.run_prober) */
    struct listener *listeners[WORKER_MAX_LISTEN];
    int nlisteners;
    struct udp_relay *udp[WORKER_MAX_LISTEN];
    int nudp;
    LIST_HEAD(worker_sessions, session) sessions; /* every open TCP session */
    unsigned nsessions;
    size_t released;                 /* relay_release_idle: bytes freed since the last trim */
    /* Called by relay.c when a draining worker's last session closed. Set by whoever owns the
     * process (worker_run), so relay.c needs to know nothing of it. */
    void (*on_sessions_done)(void *ctx);
    void *on_sessions_done_ctx;
    bool draining;                   /* stopped accepting; exits when sessions reach zero */
    struct log_ratelimit rl_handshake; /* failed handshakes, summarized */
    struct log_ratelimit rl_accept;    /* accept errors (EMFILE...), summarized */
    struct log_ratelimit rl_udp;       /* dropped datagrams, summarized */
    struct log_ratelimit rl_connect;   /* outbound connects and lookups that failed */
    struct log_ratelimit rl_refused;   /* targets the server's policy refused */
    bool mptcp_warned;                 /* "mptcp" asked for, the kernel has none: said once */
    struct log_ratelimit rl_shared;    /* shared_store unavailable or late */
};

/* Slot slot's sockets of s into env (TCP as balance has them, UDP), each with its port. */
void worker_env_sockets(struct worker_env *env, const struct socket_set *s, int slot,
                        enum config_balance balance);

/* Every check a worker's start runs, without starting one: the method has a protocol, the
 * resolver opens with the configured nameservers, the ACL file opens and parses. --check, a
 * start and every reload run it, so a configuration they accept also starts its workers.
 * Returns 0, or -1 with the reason in err. */
int worker_preflight(const struct config *c, char *err, size_t errlen);
/* Gives c's users and ports their slots in m's per-user and per-port counters
 * (config_user.metrics_slot, config_port.metrics_slot): run by the master, before the workers
 * that read c are forked, at start and at each reload. */
void worker_user_slots(struct config *c, struct metrics_shared *m);
/* User slots to make at start for c: CONFIG_MAX_USERS when a port has users, so every user
 * added by reloads (or shared_store_users) is counted; 0 without users. */
int worker_user_capacity(const struct config *c);
/* Port slots to make at start for c: CONFIG_MAX_PORTS, every port a server may have, however
 * many are added live (0: not a server). */
int worker_port_capacity(const struct config *c);

/* Runs a worker until it is told to stop (SIGTERM/SIGINT: drain, then exit) or its master dies.
 * Returns the process exit status. */
int worker_run(const struct worker_env *env);

/* "user": gives root up for user (a name or a numeric uid), as a worker and the SIP003 plugin
 * do once set up; nothing when user is NULL or the process is not root. has_parent: set the
 * parent-death signal again, which a change of credentials clears. 0, or -1 (logged). */
int worker_drop_privileges(const char *user, bool has_parent);

/* Stops accepting and lets open sessions finish within drain_timeout. */
void worker_drain(struct worker *w);

/* ---- worker_users.c: the control channel and live user changes (issue 15) ---- */

/* Port p's key set into wp->keys and wp->proto (see worker_users.c). 0, or -1. */
int worker_port_keys_init(struct worker *w, struct worker_port *wp, const struct config_port *p);
/* Port wp's key set and the settings it owns; the entry is zeroed. */
void worker_port_keys_free(struct worker_port *wp);
/* Every port's key set, and w->ports. */
void worker_keys_free(struct worker *w);
/* Listens on the master's control channel fd (the worker owns it from now on). 0, or -1. */
int worker_live_start(struct worker *w, int fd);
void worker_live_free(struct worker *w);
/* Applies a new user list: kept users (same name, same key) keep their sessions untouched,
 * new users' keys are tried from the next handshake, removed or re-keyed users' keys are
 * retired (no new session; theirs close after drain_timeout, worker_live_tick). Returns 0, or
 * -1 with why (nothing changed then, unless the key set could not be rebuilt: the worker then
 * drains). */
int worker_users_apply(struct worker *w, const struct control_users *u, char *why, size_t cap);
/* Once a second: closes the sessions of keys retired drain_timeout ago. */
void worker_live_tick(struct worker *w);

/* ---- worker.c: the sockets of ports changed live ---- */

/* Serves fd (owned from now on) for port (index in w->ports): a listener, or a UDP relay. 0, or
 * -1 (fd closed). */
int worker_serve_fd(struct worker *w, int fd, int port, bool udp);
/* Stops serving port: its listeners and UDP relays go and their descriptors close. */
void worker_unserve_port(struct worker *w, int port);

/* ---- worker_ports.c: ports added and removed live (issue 15) ---- */

/* Keeps fd, a socket of port number (not index) port that the next user list adds. 0, or -1
 * (fd closed). */
int worker_ports_keep_fd(struct worker *w, uint16_t port, bool udp, int fd);
/* True when sockets came for port number port. */
bool worker_ports_has_fd(const struct worker *w, uint16_t port);
/* Adds u's ports that w lacks (with the sockets kept for them) and removes w's ports u lacks.
 * Run after worker_users_check accepted u. The number of ports removed, or -1 with why. */
int worker_ports_apply(struct worker *w, const struct control_users *u, char *why, size_t cap);
/* Closes the sockets kept and not used. */
void worker_ports_free(struct worker *w);
/* Entries of w->ports a worker of c makes room for: c's ports, and for a server
 * CONFIG_MAX_PORTS (the ports added live), or fewer with $REUSEPROXY_TEST_MAX_PORTS (tests). */
int worker_ports_table_size(const struct config *c);
/* Makes the entries of removed ports that nothing points into any more vacant (their key sets
 * freed), so that added ports reuse them. Run once a second and before ports are added. */
void worker_ports_reclaim(struct worker *w);
/* Ports that could be added now: entries never used, vacant, or of removed ports that nothing
 * points into any more. */
int worker_ports_room(const struct worker *w);

#endif
