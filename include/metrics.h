/* metrics.h: per-worker counters in shared memory (set up by the master before fork, written by
 * each worker with relaxed atomics, read by the master) and their Prometheus text rendering,
 * served on metrics_address by the master. */
#ifndef RP_METRICS_H
#define RP_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct ev_loop;

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
    uint64_t udp_dropped;        /* datagrams dropped: bad tag, malformed, refused */
    uint64_t restarts;           /* times this slot's worker was (re)started, minus one */
    uint64_t pid;                /* current worker pid */
};

struct metrics_shared {
    int nworkers;
    struct metrics_worker worker[];
};

/* Makes the MAP_SHARED block for nworkers slots (at least 1). NULL on failure. */
struct metrics_shared *metrics_new_shared(int nworkers);
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

/* A tiny HTTP/1.0 server on the master's loop answering GET /metrics (anything else: 404).
 * address: "host:port". Returns NULL with a message in err. */
struct metrics_server;
struct metrics_server *metrics_server_start(struct ev_loop *loop, const char *address,
                                            const struct metrics_shared *m, char *err,
                                            size_t errlen);
/* The same on a listening socket opened elsewhere (the master's socket set, which hands it on
 * to a new master on a binary upgrade). Takes ownership of fd. NULL when out of memory. */
struct metrics_server *metrics_server_adopt(struct ev_loop *loop, int fd,
                                            const struct metrics_shared *m);
void metrics_server_stop(struct metrics_server *s);
/* The port the server listens on (useful after asking for port 0), or -1. */
int metrics_server_port(const struct metrics_server *s);
/* How long one client may take to send its request and read the answer (default 5 s); applies
 * to clients accepted afterwards. Ignored unless seconds > 0. */
void metrics_server_set_timeout(struct metrics_server *s, double seconds);

#endif
