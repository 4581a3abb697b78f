/* shared_store.c: Redis shared by several hosts (shared_store.h), through hiredis' asynchronous
 * API attached to the worker's libev loop. One connection per worker; a lost connection is
 * opened again every SHARED_STORE_RETRY seconds, and meanwhile every claim fails at once, so
 * "shared_store_failure" decides without waiting. Nothing here blocks: the address is an IP
 * literal (config_check.c refuses names, which hiredis would resolve with a blocking call). */
#include "autoconfig.h"

#include "shared_store.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef RP_HAVE_HIREDIS

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <hiredis/adapters/libev.h>

#include "netaddr.h"

/* Seconds between two attempts to (re)connect. */
#define SHARED_STORE_RETRY 1.0

/* The per-user counters pushed, by their Redis name (rp:user:NAME:<name>). */
static const struct {
    const char *name;
    size_t offset;
} store_user_fields[] = {
    {"connections", offsetof(struct metrics_user, connections)},
    {"bytes_in", offsetof(struct metrics_user, bytes_in)},
    {"bytes_out", offsetof(struct metrics_user, bytes_out)},
};
#define STORE_USER_NFIELDS (sizeof store_user_fields / sizeof store_user_fields[0])

/* A user slot's totals at the last push, and whose they were: a slot freed by a reload, or
 * given to another user, starts again from zero. */
struct store_user_pushed {
    char name[METRICS_USER_NAME_MAX];
    uint64_t value[STORE_USER_NFIELDS];
};

static uint64_t store_user_value(const struct metrics_user *c, size_t i)
{
    return *(const uint64_t *)((const char *)c + store_user_fields[i].offset);
}

struct shared_store_claim {
    shared_store_cb cb; /* NULL: abandoned, the reply is dropped */
    void *arg;
};

struct shared_store {
    struct ev_loop *loop;
    struct config_shared cfg; /* a copy (url NULL): the master's store outlives a reload's */
    redisAsyncContext *ac;    /* NULL while disconnected */
    bool closing;
    ev_timer retry;
    ev_timer push;
    struct metrics_worker *stats; /* or NULL: no port counters (the master's store) */
    uint16_t port;
    /* the counters' values at the last push: each push adds the growth since */
    uint64_t pushed_accepted, pushed_in, pushed_out;
    const struct metrics_shared *users;    /* whose users' totals are pushed, or NULL */
    struct store_user_pushed *user_pushed; /* [users->nusers] */
    int user_replies;                      /* the last users' push's replies still to come */
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
    if (st->cfg.is_unix)
        log_info("shared_store: connected to unix:%s%s", st->cfg.path, st->stats ? "" : " (users)");
    else
        log_info("shared_store: connected to %s port %u%s", st->cfg.host, (unsigned)st->cfg.port,
                 st->stats ? "" : " (users)");
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
    const struct config_shared *c = &st->cfg;
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
    /* hiredis makes its socket without close-on-exec; the master execs plugins and, on a binary
     * upgrade, itself, neither of which may keep our Redis connection. No fork comes between
     * socket() and here (one thread), so nothing can inherit it meanwhile. */
    if (netaddr_set_cloexec(ac->c.fd, true) < 0 || redisLibevAttach(st->loop, ac) != REDIS_OK) {
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

static void store_user_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct shared_store *st = privdata;
    (void)ac, (void)r; /* also called with no reply when the connection goes */
    st->user_replies--;
}

/* Where user slot u's growth is counted from: its totals at the last push, or zero for a slot
 * that changed hands (or was zeroed: removed, then listed again) since. */
static struct store_user_pushed *store_user_base(struct shared_store *st, int u, const char *name,
                                                 const struct metrics_user *now)
{
    struct store_user_pushed *p = &st->user_pushed[u];

    if (strcmp(p->name, name) != 0) {
        memset(p, 0, sizeof *p);
        snprintf(p->name, sizeof p->name, "%s", name);
    }
    for (size_t i = 0; i < STORE_USER_NFIELDS; i++)
        if (store_user_value(now, i) < p->value[i])
            memset(p->value, 0, sizeof p->value);
    return p;
}

/* Adds what each user's host total grew by since the last push, under the user's keys
 * (rp:user:NAME:*) and under its port's (rp:port:PORT:user:NAME:*). */
static void store_push_users(struct shared_store *st)
{
    const struct metrics_shared *m = st->users;

    /* At most one push's commands in flight: a slow Redis costs a skipped push (its growth
     * goes with the next), never a queue that grows with every interval. */
    if (!m || st->user_replies > 0)
        return;
    for (int u = 0; u < metrics_user_slots_top(m); u++) { /* the slots ever given out */
        const char *name = metrics_user_name(m, u);
        struct metrics_user now;
        metrics_user_total(m, u, &now);
        struct store_user_pushed *p = store_user_base(st, u, name, &now);
        for (size_t i = 0; name[0] && i < STORE_USER_NFIELDS; i++) {
            uint64_t v = store_user_value(&now, i);
            unsigned long long grew = v - p->value[i];
            const char *f = store_user_fields[i].name;
            if (grew == 0 ||
                redisAsyncCommand(st->ac, store_user_reply, st, "INCRBY rp:user:%s:%s %llu", name,
                                  f, grew) != REDIS_OK)
                continue;
            st->user_replies++;
            if (redisAsyncCommand(st->ac, store_user_reply, st, "INCRBY rp:port:%u:user:%s:%s %llu",
                                  (unsigned)st->port, name, f, grew) == REDIS_OK)
                st->user_replies++;
            p->value[i] = v;
        }
    }
}

static void store_push_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct shared_store *st = t->data;
    (void)loop, (void)revents;
    if (!st->ac) /* kept for the next push */
        return;
    if (st->stats) {
        store_incr(st, "connections", metrics_read(&st->stats->accepted), &st->pushed_accepted);
        store_incr(st, "bytes_in", metrics_read(&st->stats->bytes_in), &st->pushed_in);
        store_incr(st, "bytes_out", metrics_read(&st->stats->bytes_out), &st->pushed_out);
    }
    store_push_users(st);
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
                                      struct metrics_worker *stats, uint16_t port,
                                      const struct metrics_shared *users)
{
    struct shared_store *st = calloc(1, sizeof *st);
    if (st && users && users->nusers > 0) {
        st->users = users;
        st->user_pushed = calloc((size_t)users->nusers, sizeof *st->user_pushed);
    }
    if (!st || (st->users && !st->user_pushed)) {
        log_error("shared_store: out of memory");
        free(st);
        return NULL;
    }
    st->loop = loop;
    st->cfg = *cfg;
    st->cfg.url = st->cfg.failure_text = NULL;
    st->stats = stats;
    st->port = port;
    /* A worker that replaces one that died finds its slot's counters where they were: what
     * its predecessor had pushed is not pushed again (what it had not is lost, at most one
     * interval's worth). A store made again (a reload that changed "shared_store") likewise
     * starts from the users' totals as they are. */
    if (stats) {
        st->pushed_accepted = metrics_read(&stats->accepted);
        st->pushed_in = metrics_read(&stats->bytes_in);
        st->pushed_out = metrics_read(&stats->bytes_out);
    }
    for (int u = 0; st->users && u < metrics_user_slots_top(users); u++) {
        struct metrics_user now;
        metrics_user_total(users, u, &now);
        store_user_base(st, u, metrics_user_name(users, u), &now);
        for (size_t i = 0; i < STORE_USER_NFIELDS; i++)
            st->user_pushed[u].value[i] = store_user_value(&now, i);
    }
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
    free(st->user_pushed);
    free(st);
}

bool shared_store_same_place(const struct shared_store *st, const struct config_shared *cfg)
{
    const struct config_shared *c = &st->cfg;
    return c->is_unix == cfg->is_unix && c->port == cfg->port && c->db == cfg->db &&
           strcmp(c->host, cfg->host) == 0 && strcmp(c->path, cfg->path) == 0;
}

#else /* no hiredis: config_validate() refuses "shared_store" before anyone gets here */

bool shared_store_available(void)
{
    return false;
}

struct shared_store *shared_store_new(struct ev_loop *loop, const struct config_shared *cfg,
                                      struct metrics_worker *stats, uint16_t port,
                                      const struct metrics_shared *users)
{
    (void)loop, (void)cfg, (void)stats, (void)port, (void)users;
    log_error("shared_store: this build of reuseproxy lacks hiredis");
    return NULL;
}

void shared_store_free(struct shared_store *st)
{
    (void)st;
}

bool shared_store_same_place(const struct shared_store *st, const struct config_shared *cfg)
{
    (void)st, (void)cfg;
    return false;
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
