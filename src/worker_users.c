/* worker_users.c: a worker's key set, and its users changed live (issue 15).
 *
 * The key set is ports[0]'s (struct proto_ctx): a server's own key then its users' keys, or a
 * client's identity keys then its key. A key keeps its index for the worker's life: an open
 * session (proto_conn.key) and a SIP022 UDP association (its state's key) name their key by
 * index, so a reload that leaves a user as it was leaves everything of theirs untouched. A
 * removed or re-keyed user's key is retired, not freed: the protocol never tries it again
 * (proto_ctx.retired), its sessions stop counting as that user at once (their counter slot may
 * be given to someone else) and are closed drain_timeout later, with its UDP associations
 * (SIP022: their datagrams find no user from the start); a new user's key is appended.
 * The retired keys cost 40 bytes each until the worker is replaced; a worker refuses to grow
 * past twice CONFIG_MAX_USERS keys, and the master then replaces it.
 *
 * The master sends new user lists over the worker's control channel (control.h); this file
 * receives them, applies them and answers. */
#include "autoconfig.h"

#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "control.h"
#include "relay.h"
#include "udp_relay.h"
#include "worker.h"

/* The most keys a worker holds, live and retired: see the top of the file. */
#define WORKER_KEYS_MAX (2 * (size_t)CONFIG_MAX_USERS + 1)

struct worker_live {
    ev_io io;
    int fd;
    struct worker *w;
    ev_tstamp retire_until; /* the last retired key's sessions close by then: ticks check */
};

/* ---- the key set ---- */

/* Room for n keys in every array beside keys. 0, or -1 (the arrays are as they were). */
static int worker_keys_reserve(struct worker *w, size_t n)
{
    struct crypto_key *keys = calloc(n, sizeof *keys);
    const char **names = realloc(w->key_names, n * sizeof *names);
    if (names)
        w->key_names = names;
    int *slots = names ? realloc(w->key_slots, n * sizeof *slots) : NULL;
    if (slots)
        w->key_slots = slots;
    bool *retired = slots ? realloc(w->key_retired, n * sizeof *retired) : NULL;
    if (retired)
        w->key_retired = retired;
    double *at = retired ? realloc(w->key_retired_at, n * sizeof *at) : NULL;
    if (at)
        w->key_retired_at = at;
    if (!keys || !at) {
        free(keys);
        return -1;
    }
    /* a new block, so the old keys are wiped rather than left behind by realloc */
    if (w->keys) {
        memcpy(keys, w->keys, w->proto.nkeys * sizeof *keys);
        crypto_wipe(w->keys, w->proto.nkeys * sizeof *keys);
        free(w->keys);
    }
    w->keys = keys;
    return 0;
}

/* Appends a key (a user's when name is set: the worker keeps its own copy of the name). */
static int worker_keys_add(struct worker *w, size_t k, const struct crypto_key *key,
                           const char *name, size_t name_len, int slot)
{
    w->keys[k] = *key;
    w->key_names[k] = name ? strndup(name, name_len) : NULL;
    w->key_slots[k] = slot;
    w->key_retired[k] = false;
    w->key_retired_at[k] = 0;
    return name && !w->key_names[k] ? -1 : 0;
}

/* (Re)builds the protocol's per-worker state over the first n keys. */
static int worker_keys_commit(struct worker *w, size_t n)
{
    proto_ctx_free(&w->proto);
    w->proto.keys = w->keys;
    w->proto.nkeys = n;
    w->proto.names = w->key_names;
    w->proto.retired = w->key_retired;
    return proto_ctx_init(&w->proto);
}

int worker_keys_init(struct worker *w, const struct config *c)
{
    const struct config_port *p = &c->ports[0];
    bool client = c->role != ROLE_SERVER;
    /* a SIP004 server with users and no password of its own has only its users' keys */
    bool own = client || c->password || c->key ||
               crypto_method_info(p->method)->proto == CRYPTO_PROTO_SIP022;
    size_t first = own ? 1 : 0;
    size_t n = first + (size_t)(client ? p->n_identity_keys : p->n_users);
    int rc = 0;

    w->proto = (struct proto_ctx){
        .ops = proto_for_method(p->method), .client = client, .replay = w->replay};
    if (!w->proto.ops) {
        log_error("no protocol for %s", crypto_method_info(p->method)->name);
        return -1;
    }
    if (worker_keys_reserve(w, n ? n : 1) < 0)
        return -1;
    w->keys_first = client ? n : first;
    for (int i = 0; client && i < p->n_identity_keys; i++)
        rc |= worker_keys_add(w, (size_t)i, &p->identity_keys[i], NULL, 0, -1);
    if (own)
        rc |= worker_keys_add(w, client ? n - 1 : 0, &p->key, NULL, 0, -1);
    for (int i = 0; !client && i < p->n_users; i++)
        rc |= worker_keys_add(w, first + (size_t)i, &p->users[i].key, p->users[i].name,
                              strlen(p->users[i].name), p->users[i].metrics_slot);
    if (rc != 0 || worker_keys_commit(w, n) != 0) {
        log_error("%s: cannot set up the keys", crypto_method_info(p->method)->name);
        return -1;
    }
    return 0;
}

void worker_keys_free(struct worker *w)
{
    size_t n = w->proto.nkeys;
    proto_ctx_free(&w->proto);
    if (w->keys)
        crypto_wipe(w->keys, n * sizeof *w->keys);
    for (size_t k = 0; w->key_names && k < n; k++)
        free((char *)w->key_names[k]);
    free(w->keys);
    free(w->key_names);
    free(w->key_slots);
    free(w->key_retired);
    free(w->key_retired_at);
    w->keys = NULL;
    w->key_names = NULL;
    w->key_slots = NULL;
    w->key_retired = NULL;
    w->key_retired_at = NULL;
}

/* ---- live changes ---- */

static bool same_key(const struct crypto_key *a, const struct crypto_key *b)
{
    return a->method == b->method && a->len == b->len && memcmp(a->bytes, b->bytes, a->len) == 0;
}

/* The index in u of the user named name, or -1; index is an open-addressing table of
 * u's users (slot -> user + 1) with mask + 1 slots. */
static long find_user(const struct control_port *u, const uint32_t *index, size_t mask,
                      const char *name)
{
    size_t len = strlen(name);
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)name[i]) * 16777619u;
    for (size_t i = h & mask; index[i]; i = (i + 1) & mask) {
        const struct control_user *cu = &u->users[index[i] - 1];
        if (cu->name_len == len && memcmp(cu->name, name, len) == 0)
            return (long)index[i] - 1;
    }
    return -1;
}

static uint32_t *index_users(const struct control_port *u, size_t *mask)
{
    size_t cap = 4;
    while (cap < 2 * (size_t)u->n_users)
        cap *= 2;
    uint32_t *index = calloc(cap, sizeof *index);
    if (!index)
        return NULL;
    *mask = cap - 1;
    for (int k = 0; k < u->n_users; k++) {
        uint32_t h = 2166136261u;
        for (size_t i = 0; i < u->users[k].name_len; i++)
            h = (h ^ (uint8_t)u->users[k].name[i]) * 16777619u;
        size_t i = h & *mask;
        while (index[i])
            i = (i + 1) & *mask;
        index[i] = (uint32_t)k + 1;
    }
    return index;
}

/* What the master sent must be this worker's port with only its users changed. */
static const char *worker_users_check(const struct worker *w, const struct control_users *u)
{
    const struct config_port *p = &w->cfg->ports[0];
    if (w->proto.client || u->n_port != w->cfg->n_port || u->ports[0].port != p->port)
        return "the ports differ from this worker's";
    if (!same_key(&u->ports[0].key, &p->key)) /* the method is the key's */
        return "the port's method or key differs from this worker's";
    if (u->ports[0].n_users == 0 || p->n_users == 0) /* the counters are sized at start */
        return "users cannot be added to a port that had none, nor all removed";
    return NULL;
}

int worker_users_apply(struct worker *w, const struct control_users *u, char *why, size_t cap)
{
    const struct control_port *up = &u->ports[0];
    size_t n = w->proto.nkeys, mask = 0, kept = 0, retired = 0;
    const char *bad = worker_users_check(w, u);
    uint32_t *index = bad ? NULL : index_users(up, &mask);
    bool *seen = index ? calloc((size_t)up->n_users, sizeof *seen) : NULL;
    ev_tstamp now = ev_now(w->loop);

    if (bad || !seen || n + (size_t)up->n_users > WORKER_KEYS_MAX ||
        worker_keys_reserve(w, n + (size_t)up->n_users) < 0) {
        snprintf(why, cap, "%s",
                 bad    ? bad
                 : seen ? "too many keys: replace the workers"
                        : "out of memory");
        free(index);
        free(seen);
        return -1;
    }
    for (size_t k = w->keys_first; k < n; k++) {
        if (w->key_retired[k])
            continue;
        long i = find_user(up, index, mask, w->key_names[k]);
        if (i >= 0 && same_key(&up->users[i].key, &w->keys[k])) {
            seen[i] = true; /* kept: its sessions go on, on the slot the master gave it */
            w->key_slots[k] = up->users[i].metrics_slot;
            kept++;
            continue;
        }
        w->key_retired[k] = true;
        w->key_retired_at[k] = now;
        w->key_slots[k] = -1;
        retired++;
    }
    size_t total = n;
    int rc = 0;
    for (int i = 0; i < up->n_users; i++)
        if (!seen[i])
            rc |= worker_keys_add(w, total++, &up->users[i].key, up->users[i].name,
                                  up->users[i].name_len, up->users[i].metrics_slot);
    free(index);
    free(seen);
    if (rc != 0 || worker_keys_commit(w, total) != 0) {
        snprintf(why, cap, "cannot set up the new keys: draining");
        worker_drain(w);
        return -1;
    }
    if (retired && w->live)
        w->live->retire_until = now + w->cfg->drain_timeout + 1;
    relay_users_retired(w, 0); /* retired users' sessions count as nobody's from now on */
    log_info("users applied live: %zu kept, %zu added, %zu removed or re-keyed (their "
             "connections close in %d s)",
             kept, total - n, retired, w->cfg->drain_timeout);
    return 0;
}

void worker_live_tick(struct worker *w)
{
    ev_tstamp now = ev_now(w->loop);
    if (w->live && w->live->retire_until > 0 && now <= w->live->retire_until + 1) {
        relay_users_retired(w, now - w->cfg->drain_timeout);
        for (int i = 0; i < w->nudp; i++)
            udp_relay_close_retired(w->udp[i], now - w->cfg->drain_timeout);
    }
}

/* ---- the control channel ---- */

/* Maps the payload fd and applies it. 0, or -1 with why. */
static int worker_live_users(struct worker *w, int fd, char *why, size_t cap)
{
    struct stat st;
    struct control_users u;
    void *p;

    if (fd < 0 || fstat(fd, &st) < 0 || st.st_size <= 0 ||
        (p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0)) == MAP_FAILED) {
        snprintf(why, cap, "no readable users payload");
        return -1;
    }
    int rc = control_users_parse(p, (size_t)st.st_size, &u);
    if (rc < 0)
        snprintf(why, cap, "malformed users payload");
    else
        rc = worker_users_apply(w, &u, why, cap);
    control_users_free(&u);
    munmap(p, (size_t)st.st_size);
    return rc;
}

static void worker_live_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct worker_live *l = io->data;
    struct control_msg msg;
    int fd;
    (void)revents;

    for (int k = 0; k < 8; k++) {
        int r = control_recv(l->fd, &msg, &fd);
        if (r <= 0) {
            if (r == 0) { /* the master closed it: it replaced this worker, or is gone */
                ev_ref(loop);
                ev_io_stop(loop, io);
            }
            return;
        }
        if (msg.type != CONTROL_USERS) {
            if (fd >= 0)
                close(fd);
            continue;
        }
        struct control_msg ack = {
            .magic = CONTROL_MAGIC, .type = CONTROL_ACK, .generation = msg.generation};
        if (l->w->draining)
            snprintf(ack.why, sizeof ack.why, "draining");
        else if (worker_live_users(l->w, fd, ack.why, sizeof ack.why) == 0)
            ack.why[0] = '\0';
        ack.status = ack.why[0] ? 1 : 0;
        if (fd >= 0)
            close(fd);
        if (ack.status)
            log_warn("users not applied live: %s", ack.why);
        if (control_send(l->fd, &ack, -1) < 0)
            log_warn("cannot answer the master on the control channel");
    }
}

int worker_live_start(struct worker *w, int fd)
{
    if (fd < 0)
        return 0;
    struct worker_live *l = calloc(1, sizeof *l);
    if (!l) {
        close(fd);
        return -1;
    }
    l->fd = fd;
    l->w = w;
    ev_io_init(&l->io, worker_live_cb, fd, EV_READ);
    l->io.data = l;
    ev_io_start(w->loop, &l->io);
    ev_unref(w->loop); /* the channel alone does not keep a draining worker alive */
    w->live = l;
    return 0;
}

void worker_live_free(struct worker *w)
{
    struct worker_live *l = w->live;
    if (!l)
        return;
    if (ev_is_active(&l->io)) {
        ev_ref(w->loop);
        ev_io_stop(w->loop, &l->io);
    }
    close(l->fd);
    free(l);
    w->live = NULL;
}
