/* shared_store.h: state several hosts share in Redis ("shared_store"), one connection per
 * worker through hiredis' asynchronous API on the worker's own libev loop (its libev adapter):
 * nothing here ever blocks the loop.
 *  - Replay protection across hosts: a first flight's salt, once the worker's own replay store
 *    (replay.c) has let it pass, is claimed with one "SET rp:salt:<hex> 1 NX EX ttl": the first
 *    host to claim it wins; another host that sees the same salt is told it is a replay.
 *  - Fleet counters: every few seconds each worker adds what its port's counters grew by since
 *    its last push (INCRBY), so a panel reading Redis sees the sum over every host and worker.
 *    Per-user counters are pushed once per host, by the master (the single process with
 *    workers: 0): each user's total over every worker slot, which outlives a worker, so a
 *    worker replaced loses nothing of them.
 * Built only with hiredis (configure --with-hiredis); without it shared_store_new() fails and
 * the configuration refuses the key beforehand. */
#ifndef RP_SHARED_STORE_H
#define RP_SHARED_STORE_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "log.h"
#include "metrics.h"

/* Seconds a claimed salt is kept in Redis. SIP022 clients' timestamps are refused after 30 s,
 * so a day covers them many times; for SIP004 it is the window of replays refused across hosts
 * (each host's own store keeps its salts longer, by count). */
#define SHARED_STORE_SALT_TTL 86400
/* Seconds between two counter pushes of a store. */
#define SHARED_STORE_PUSH_INTERVAL 2.0

struct shared_store;
struct shared_store_claim;

enum shared_store_verdict {
    SHARED_STORE_NEW,      /* this host claimed the salt first */
    SHARED_STORE_REPLAYED, /* another connection (any host) claimed it before */
    SHARED_STORE_FAILED,   /* Redis is down or answered with an error */
};

typedef void (*shared_store_cb)(void *arg, enum shared_store_verdict v);

/* A store on loop; stats: a worker slot's counters, pushed under port (NULL: none); users: the
 * block whose users' totals are pushed (NULL, or no user slots: none). cfg is copied. NULL
 * (logged) when the build lacks hiredis or memory runs out; an unreachable Redis is not an
 * error: the store keeps reconnecting, and claims meanwhile fail. */
struct shared_store *shared_store_new(struct ev_loop *loop, const struct config_shared *cfg,
                                      struct metrics_worker *stats, uint16_t port,
                                      const struct metrics_shared *users);
/* Closes the connection. The growth since the last push is not pushed: at most one
 * interval's worth when a process stops. */
void shared_store_free(struct shared_store *st);
/* Whether st talks to the Redis cfg names (a reload that changes it makes the store again). */
bool shared_store_same_place(const struct shared_store *st, const struct config_shared *cfg);

/* Claims salt[0..len). The verdict comes through cb, later, from the loop; or at once (the
 * return value, cb not called) when Redis is not connected: SHARED_STORE_FAILED. Returns -1
 * when the claim is under way; then *claim is set and may be abandoned with
 * shared_store_abandon() (cb is then never called). */
int shared_store_claim(struct shared_store *st, const uint8_t *salt, size_t len, shared_store_cb cb,
                       void *arg, struct shared_store_claim **claim);
void shared_store_abandon(struct shared_store_claim *claim);

/* Whether this build can talk to Redis (configure found hiredis). */
bool shared_store_available(void);

#endif
