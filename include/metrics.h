/* metrics.h: per-worker counters in shared memory (set up by the master before fork, written by
 * each worker with relaxed atomics, read by the master) and their Prometheus text rendering,
 * served on metrics_address by the master (metrics_http.h). */
#ifndef RP_METRICS_H
#define RP_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct metrics_worker {
    uint64_t accepted;           /* TCP connections accepted */
    uint64_t active;             /* TCP connections open now (gauge) */
    uint64_t bytes_in;           /* bytes read from clients */
    uint64_t bytes_out;          /* bytes written to clients */
    uint64_t udp_associations;   /* UDP associations open now (gauge) */
    uint64_t udp_packets_in;
    uint64_t udp_packets_out;
    uint64_t udp_evicted;        /* associations evicted because the table was full */
    uint64_t failed_handshakes;  /* bad tag, malformed header, refused target (TCP) */
    uint64_t replays;            /* salts refused as replays (subset of failed_handshakes) */
    uint64_t handshake_limited;  /* accepts refused: max_handshakes_per_source reached */
    uint64_t loops_refused;      /* targets that were the server's own listener (a proxy loop) */
    uint64_t local_refused;      /* local port: bad requests, wrong credentials, ACL-blocked */
    uint64_t proxy_refused;      /* refused PROXY protocol headers: a stranger's, or malformed */
    uint64_t shared_failures;    /* shared_store: salts Redis could not judge (down, late, error) */
    uint64_t udp_dropped;        /* datagrams dropped: bad tag, malformed, refused */
    uint64_t restarts;           /* times this slot's worker was replaced after it died */
    uint64_t reloads;            /* reloads that replaced this slot's worker */
    uint64_t fork_failures;      /* forks for this slot that failed (each is retried) */
    uint64_t pid;                /* current worker pid */
    uint64_t stalls;             /* times this slot's worker stopped answering (steer.h) */
    uint64_t stalled;            /* 1 while it is stalled and steered around (gauge) */
    uint64_t heartbeat_ms;       /* the worker's last heartbeat, CLOCK_MONOTONIC ms (not shown) */
};

/* One server of the local roles (several servers, failover): probed by whoever runs the
 * prober (upstream.h: the master, or the single process), read by every worker to choose, and
 * counted by the workers. Bounded by the number of servers a configuration may list. */
#define METRICS_MAX_SERVERS 8
struct metrics_upstream {
    uint64_t up;          /* 1: the last probe answered (gauge) */
    uint64_t latency_us;  /* recent probe latency, a moving average; 0: not measured yet */
    uint64_t checks;      /* probe results so far: a worker's own "down" lasts until it moves */
    uint64_t connections; /* connections sent to it (counter) */
    uint64_t connect_failures; /* connects to it that failed and went to another (counter) */
    uint64_t udp_sent;         /* datagrams sealed and sent to it (counter) */
    uint64_t udp_received;     /* datagrams from it that opened (counter) */
    uint64_t udp_associations; /* associations that started on it or moved to it (counter) */
    uint64_t udp_failovers;    /* associations that left it because it was down (counter) */
    char name[280];            /* the server label, "host:port" ("[v6]:port") */
};

/* One user's counters in one worker (issue 15: per-user accounting). */
struct metrics_user {
    uint64_t bytes_in;          /* bytes read from the user's clients */
    uint64_t bytes_out;         /* bytes written to them */
    uint64_t connections;       /* TCP connections that opened as this user */
    uint64_t udp_datagrams;     /* datagrams received from this user's clients */
    uint64_t failed_handshakes; /* first flights that opened with the user's key, then failed */
};

/* A user slot's name, as the series' user label says it; a name longer than this is cut. */
#define METRICS_USER_NAME_MAX 64
struct metrics_user_name {
    char name[METRICS_USER_NAME_MAX]; /* "" for a free slot */
    unsigned port;                    /* the port label: the user's port */
};

/* One server port's counters in one worker (issue 15: per-port accounting). */
struct metrics_port {
    uint64_t bytes_in;          /* bytes read from the port's clients */
    uint64_t bytes_out;         /* bytes written to them */
    uint64_t connections;       /* TCP connections accepted on it */
    uint64_t udp_datagrams;     /* datagrams received on it */
    uint64_t failed_handshakes; /* probes, bad tags, replays and refused requests on it */
};

/* Laid out as: this header, worker[nworkers], the names of nusers user slots, then each
 * worker's nusers struct metrics_user (metrics_user_counters), then the port numbers of nports
 * port slots, then each worker's nports struct metrics_port (metrics_port_counters). */
struct metrics_shared {
    int nworkers;
    int nusers;     /* user slots, fixed at start */
    int nports;     /* port slots, fixed at start */
    int user_next;  /* where metrics_users_sync looks for a free slot first (master only) */
    int user_top;   /* one past the highest user slot ever given out: the rest never touched */
    int port_next;  /* where metrics_ports_sync looks for a free slot first (master only) */
    unsigned port;  /* the port label of user series synced without ports */
    int nupstreams; /* servers in upstream[] (0: the server role, or a single server) */
    struct metrics_upstream upstream[METRICS_MAX_SERVERS];
    struct metrics_worker worker[];
};

/* Names the servers' series (n of them, at most METRICS_MAX_SERVERS) and zeroes their values:
 * at start and when a reload changes the list. */
void metrics_set_upstreams(struct metrics_shared *m, const char *const *names, int n);


/* Makes the MAP_SHARED block for nworkers slots (at least 1), nusers user slots (0: no
 * per-user series) and nports port slots (0: no per-port series). NULL on failure. */
struct metrics_shared *metrics_new_shared(int nworkers, int nusers, int nports);
/* Worker w's counters of the nusers user slots, or NULL without user slots. */
struct metrics_user *metrics_user_counters(struct metrics_shared *m, int w);
/* One past the highest user slot given out so far: slots from there on were never used (and
 * their pages never touched), so a scan of the user slots stops there. */
int metrics_user_slots_top(const struct metrics_shared *m);
/* User slot u's name, "" for a free slot (or u out of range). */
const char *metrics_user_name(const struct metrics_shared *m, int u);
/* User slot u's counters summed over every worker: the host's total for that user. */
void metrics_user_total(const struct metrics_shared *m, int u, struct metrics_user *sum);
/* Worker w's counters of the nports port slots, or NULL without port slots. */
struct metrics_port *metrics_port_counters(struct metrics_shared *m, int w);
/* Gives each user (names[i] on port ports[i]; ports NULL: m->port for all) a user slot in
 * slots[i] (-1: none left, not counted): the one it had, so its counters go on across reloads,
 * or a free one: the free one after the last given out (a freed slot is given out again
 * last), zeroed. Slots of users no longer in the list are freed and zeroed: their series
 * disappear. Run by the master at start and reload. */
void metrics_users_sync(struct metrics_shared *m, const char *const *names, const unsigned *ports,
                        int n, int *slots);
/* The same for ports[0..n) and the port slots; a new port's slot is the free one after the
 * last given out (a freed slot is given out again last) and starts at zero. */
void metrics_ports_sync(struct metrics_shared *m, const uint16_t *ports, int n, int *slots);
void metrics_free_shared(struct metrics_shared *m);

/* Relaxed atomic updates, safe from any worker. */
static inline void metrics_add(uint64_t *counter, uint64_t n)
{
    __atomic_fetch_add(counter, n, __ATOMIC_RELAXED);
}
static inline void metrics_sub(uint64_t *counter, uint64_t n)
{
    __atomic_fetch_sub(counter, n, __ATOMIC_RELAXED);
}
static inline uint64_t metrics_read(const uint64_t *counter)
{
    return __atomic_load_n(counter, __ATOMIC_RELAXED);
}

/* Renders every counter in Prometheus text format (version 0.0.4), one series per worker with a
 * worker="i" label, plus HELP and TYPE lines. Returns the length written (truncated to cap-1 and
 * NUL-terminated), or -1. */
int metrics_render(const struct metrics_shared *m, char *out, size_t cap);

/* The same into a buffer of the right size (malloc'd, NUL-terminated). Returns it with its
 * length in *len, or NULL when out of memory or beyond 64 MiB. */
char *metrics_render_alloc(const struct metrics_shared *m, size_t *len);

#endif
