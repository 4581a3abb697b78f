/* shared_store.c: Redis shared by several hosts (shared_store.h), through hiredis' asynchronous
 * API attached to the worker's libev loop. One connection per worker; a lost connection is
 * opened again every SHARED_STORE_RETRY seconds, and meanwhile every claim fails at once, so
 * "shared_store_failure" decides without waiting. Nothing here blocks: the address is an IP
 * literal (config_check.c refuses names, which hiredis would resolve with a blocking call). */
#include "autoconfig.h"

#include "shared_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef RP_HAVE_HIREDIS

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <hiredis/adapters/libev.h>

/* Seconds between two attempts to (re)connect. */
#define SHARED_STORE_RETRY 1.0

struct shared_store_claim {
    shared_store_cb cb; /* NULL: abandoned, the reply is dropped */
    void *arg;
};

struct shared_store {
    struct ev_loop *loop;
    const struct config_shared *cfg;
    redisAsyncContext *ac; /* NULL while disconnected */
    bool closing;
    ev_timer retry;
    ev_timer push;
    struct metrics_worker *stats;
    uint16_t port;
    /* the counters' values at the last push: each push adds the growth since */
    uint64_t pushed_accepted, pushed_in, pushed_out;
};

bool shared_store_available(void)
{
    return true;
}

static void store_connect(struct shared_store *st);

static void store_lost(struct shared_store *st)
{
    st->ac = NULL;
    if (!st->closing) {
        ev_timer_set(&st->retry, SHARED_STORE_RETRY, 0.);
        ev_timer_start(st->loop, &st->retry);
    }
}

static void store_on_connect(const redisAsyncContext *ac, int status)
{
    struct shared_store *st = ac->data;
    if (status != REDIS_OK) {
        log_debug("shared_store: cannot connect: %s", ac->errstr);
        store_lost(st); /* hiredis frees the context after this callback */
        return;
    }
    log_info("shared_store: connected to %s", st->cfg->url);
}

static void store_on_disconnect(const redisAsyncContext *ac, int status)
{
    struct shared_store *st = ac->data;
    if (status != REDIS_OK)
        log_warn("shared_store: connection lost: %s", ac->errstr);
    store_lost(st);
}

static void store_connect(struct shared_store *st)
{
    const struct config_shared *c = st->cfg;
    redisAsyncContext *ac =
        c->is_unix ? redisAsyncConnectUnix(c->path) : redisAsyncConnect(c->host, c->port);

    if (!ac || ac->err) {
        log_debug("shared_store: cannot connect: %s", ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        store_lost(st);
        return;
    }
    ac->data = st;
    if (redisLibevAttach(st->loop, ac) != REDIS_OK) {
        redisAsyncFree(ac);
        store_lost(st);
        return;
    }
    redisAsyncSetConnectCallback(ac, store_on_connect);
    redisAsyncSetDisconnectCallback(ac, store_on_disconnect);
    st->ac = ac;
    /* queued before anything else, so every later command runs in that database */
    if (c->db != 0)
        redisAsyncCommand(ac, NULL, NULL, "SELECT %d", c->db);
}

static void store_retry_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop, (void)revents;
    store_connect(t->data);
}

/* ---- fleet counters ---- */

static void store_incr(struct shared_store *st, const char *name, uint64_t now, uint64_t *pushed)
{
    if (now == *pushed)
        return;
    if (redisAsyncCommand(st->ac, NULL, NULL, "INCRBY rp:port:%u:%s %llu", (unsigned)st->port, name,
                          (unsigned long long)(now - *pushed)) == REDIS_OK)
        *pushed = now;
}

static void store_push_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct shared_store *st = t->data;
    (void)loop, (void)revents;
    if (!st->ac) /* kept for the next push */
        return;
    store_incr(st, "connections", metrics_read(&st->stats->accepted), &st->pushed_accepted);
    store_incr(st, "bytes_in", metrics_read(&st->stats->bytes_in), &st->pushed_in);
    store_incr(st, "bytes_out", metrics_read(&st->stats->bytes_out), &st->pushed_out);
}

/* ---- salts ---- */

static void store_claim_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct shared_store_claim *claim = privdata;
    const redisReply *reply = r;
    enum shared_store_verdict v = SHARED_STORE_FAILED;
    (void)ac;

    /* SET ... NX: "OK" when the key was set (first claim), nil when it existed (RESP2). */
    if (reply && reply->type == REDIS_REPLY_STATUS)
        v = SHARED_STORE_NEW;
    else if (reply && reply->type == REDIS_REPLY_NIL)
        v = SHARED_STORE_REPLAYED;
    if (claim->cb)
        claim->cb(claim->arg, v);
    free(claim);
}

int shared_store_claim(struct shared_store *st, const uint8_t *salt, size_t len, shared_store_cb cb,
                       void *arg, struct shared_store_claim **out)
{
    char hex[2 * 64 + 1];
    struct shared_store_claim *claim;

    if (!st->ac || len == 0 || len > 64 || !(claim = malloc(sizeof *claim)))
        return SHARED_STORE_FAILED;
    for (size_t i = 0; i < len; i++)
        snprintf(hex + 2 * i, 3, "%02x", salt[i]);
    claim->cb = cb;
    claim->arg = arg;
    if (redisAsyncCommand(st->ac, store_claim_reply, claim, "SET rp:salt:%s 1 NX EX %d", hex,
                          SHARED_STORE_SALT_TTL) != REDIS_OK) {
        free(claim);
        return SHARED_STORE_FAILED;
    }
    *out = claim;
    return -1;
}

void shared_store_abandon(struct shared_store_claim *claim)
{
    claim->cb = NULL;
    claim->arg = NULL;
}

/* ---- lifetime ---- */

struct shared_store *shared_store_new(struct ev_loop *loop, const struct config_shared *cfg,
                                      struct metrics_worker *stats, uint16_t port)
{
    struct shared_store *st = calloc(1, sizeof *st);
    if (!st) {
        log_error("shared_store: out of memory");
        return NULL;
    }
    st->loop = loop;
    st->cfg = cfg;
    st->stats = stats;
    st->port = port;
    /* A worker that replaces one that died finds its slot's counters where they were: what
     * its predecessor had pushed is not pushed again (what it had not is lost, at most one
     * interval's worth). */
    st->pushed_accepted = metrics_read(&stats->accepted);
    st->pushed_in = metrics_read(&stats->bytes_in);
    st->pushed_out = metrics_read(&stats->bytes_out);
    ev_init(&st->retry, store_retry_cb);
    st->retry.data = st;
    ev_timer_init(&st->push, store_push_cb, SHARED_STORE_PUSH_INTERVAL, SHARED_STORE_PUSH_INTERVAL);
    st->push.data = st;
    ev_timer_start(loop, &st->push);
    store_connect(st);
    return st;
}

void shared_store_free(struct shared_store *st)
{
    if (!st)
        return;
    st->closing = true;
    ev_timer_stop(st->loop, &st->retry);
    ev_timer_stop(st->loop, &st->push);
    if (st->ac)
        redisAsyncFree(st->ac); /* pending callbacks run with no reply: their claims fail */
    free(st);
}

#else /* no hiredis: config_validate() refuses "shared_store" before anyone gets here */

bool shared_store_available(void)
{
    return false;
}

struct shared_store *shared_store_new(struct ev_loop *loop, const struct config_shared *cfg,
                                      struct metrics_worker *stats, uint16_t port)
{
    (void)loop, (void)cfg, (void)stats, (void)port;
    log_error("shared_store: this build of reuseproxy lacks hiredis");
    return NULL;
}

void shared_store_free(struct shared_store *st)
{
    (void)st;
}

int shared_store_claim(struct shared_store *st, const uint8_t *salt, size_t len, shared_store_cb cb,
                       void *arg, struct shared_store_claim **claim)
{
    (void)st, (void)salt, (void)len, (void)cb, (void)arg, (void)claim;
    return SHARED_STORE_FAILED;
}

void shared_store_abandon(struct shared_store_claim *claim)
{
    (void)claim;
}

#endif
