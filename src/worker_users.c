/* worker_users.c: a worker's key sets, and its users changed live (issue 15).
 *
 * Each port has one (struct worker_port, struct proto_ctx): a server's own key then its users'
 * keys, or a
 * client's identity keys then its key. A key keeps its index for the worker's life: an open
 * session (proto_conn.key) and a SIP022 UDP association (its state's key) name their key by
 * index, so a reload that leaves a user as it was leaves everything of theirs untouched. A
 * removed or re-keyed user's key is retired, not freed: the protocol never tries it again
 * (proto_ctx.retired), its sessions stop counting as that user at once (their counter slot may
 * be given to someone else) and are closed drain_timeout later, with its UDP associations
 * (SIP022: their datagrams find no user from the start); a new user's key is appended.
 * The retired keys cost 40 bytes each until the worker is replaced; a worker refuses to grow
 * past twice CONFIG_MAX_USERS keys per port, and the master then replaces it. Ports added and
 * removed are applied live too (worker_ports.c); a port whose settings changed is not: the
 * master replaces the workers for it.
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

/* ---- the key sets, one per port ---- */

/* Room for n keys in every array beside keys. 0, or -1 (the arrays are as they were). */
static int worker_keys_reserve(struct worker_port *wp, size_t n)
{
    struct crypto_key *keys = calloc(n, sizeof *keys);
    const char **names = realloc(wp->key_names, n * sizeof *names);
    if (names)
        wp->key_names = names;
    int *slots = names ? realloc(wp->key_slots, n * sizeof *slots) : NULL;
    if (slots)
        wp->key_slots = slots;
    bool *retired = slots ? realloc(wp->key_retired, n * sizeof *retired) : NULL;
    if (retired)
        wp->key_retired = retired;
    double *at = retired ? realloc(wp->key_retired_at, n * sizeof *at) : NULL;
    if (at)
        wp->key_retired_at = at;
    if (!keys || !at) {
        free(keys);
        return -1;
    }
    /* a new block, so the old keys are wiped rather than left behind by realloc */
    if (wp->keys) {
        memcpy(keys, wp->keys, wp->proto.nkeys * sizeof *keys);
        crypto_wipe(wp->keys, wp->proto.nkeys * sizeof *keys);
        free(wp->keys);
    }
    wp->keys = keys;
    return 0;
}

/* Appends a key (a user's when name is set: the worker keeps its own copy of the name). */
static int worker_keys_add(struct worker_port *wp, size_t k, const struct crypto_key *key,
                           const char *name, size_t name_len, int slot)
{
    wp->keys[k] = *key;
    wp->key_names[k] = name ? strndup(name, name_len) : NULL;
    wp->key_slots[k] = slot;
    wp->key_retired[k] = false;
    wp->key_retired_at[k] = 0;
    return name && !wp->key_names[k] ? -1 : 0;
}

/* (Re)builds the protocol's per-worker state over the first n keys. */
static int worker_keys_commit(struct worker_port *wp, size_t n)
{
    proto_ctx_free(&wp->proto);
    wp->proto.keys = wp->keys;
    wp->proto.nkeys = n;
    wp->proto.names = wp->key_names;
    wp->proto.retired = wp->key_retired;
    return proto_ctx_init(&wp->proto);
}

int worker_port_keys_init(struct worker *w, struct worker_port *wp, const struct config_port *p)
{
    bool client = w->cfg->role != ROLE_SERVER;
    /* a SIP004 server port with users and no password of its own has only its users' keys */
    bool own = client || p->has_key || crypto_method_info(p->method)->proto == CRYPTO_PROTO_SIP022;
    size_t first = own ? 1 : 0;
    size_t n = first + (size_t)(client ? p->n_identity_keys : p->n_users);
    int rc = 0;

    wp->cfg = p;
    wp->proto = (struct proto_ctx){
        .ops = proto_for_method(p->method), .client = client, .replay = w->replay};
    if (!wp->proto.ops) {
        log_error("no protocol for %s", crypto_method_info(p->method)->name);
        return -1;
    }
    if (worker_keys_reserve(wp, n ? n : 1) < 0)
        return -1;
    wp->keys_first = client ? n : first;
    for (int i = 0; client && i < p->n_identity_keys; i++)
        rc |= worker_keys_add(wp, (size_t)i, &p->identity_keys[i], NULL, 0, -1);
    if (own)
        rc |= worker_keys_add(wp, client ? n - 1 : 0, &p->key, NULL, 0, -1);
    for (int i = 0; !client && i < p->n_users; i++)
        rc |= worker_keys_add(wp, first + (size_t)i, &p->users[i].key, p->users[i].name,
                              strlen(p->users[i].name), p->users[i].metrics_slot);
    if (rc != 0 || worker_keys_commit(wp, n) != 0) {
        wp->proto.ops = NULL;
        log_error("port %u: %s: cannot set up the keys", p->port,
                  crypto_method_info(p->method)->name);
        return -1;
    }
    return 0;
}

void worker_port_keys_free(struct worker_port *wp)
{
    size_t n = wp->proto.nkeys;
    if (wp->proto.ops)
        proto_ctx_free(&wp->proto);
    if (wp->keys)
        crypto_wipe(wp->keys, n * sizeof *wp->keys);
    for (size_t k = 0; wp->key_names && k < n; k++)
        free((char *)wp->key_names[k]);
    free(wp->keys);
    free(wp->key_names);
    free(wp->key_slots);
    free(wp->key_retired);
    free(wp->key_retired_at);
    free(wp->own_cfg);
    memset(wp, 0, sizeof *wp);
}

void worker_keys_free(struct worker *w)
{
    for (int i = 0; w->ports && i < w->nports; i++)
        worker_port_keys_free(&w->ports[i]);
    free(w->ports);
    w->ports = NULL;
    w->nports = 0;
}

/* ---- live changes ---- */

static bool same_key(const struct crypto_key *a, const struct crypto_key *b)
{
    return a->method == b->method && a->len == b->len && memcmp(a->bytes, b->bytes, a->len) == 0;
}

static uint32_t name_hash(const char *name, size_t len)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)name[i]) * 16777619u;
    return h;
}

/* The index in u of the user named name, or -1; index is an open-addressing table of
 * u's users (slot -> user + 1) with mask + 1 slots. */
static long find_user(const struct control_port *u, const uint32_t *index, size_t mask,
                      const char *name)
{
    size_t len = strlen(name);
    for (size_t i = name_hash(name, len) & mask; index[i]; i = (i + 1) & mask) {
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
        size_t i = name_hash(u->users[k].name, u->users[k].name_len) & *mask;
        while (index[i])
            i = (i + 1) & *mask;
        index[i] = (uint32_t)k + 1;
    }
    return index;
}

/* u's entry for port wp, or NULL. */
static const struct control_port *sent_port(const struct worker_port *wp,
                                            const struct control_users *u)
{
    for (int i = 0; i < u->n_port; i++)
        if (u->ports[i].port == wp->cfg->port)
            return &u->ports[i];
    return NULL;
}

/* What the master sent must be this worker's ports with only their users changed, ports
 * removed, and ports added with their sockets. */
static const char *worker_users_check(const struct worker *w, const struct control_users *u)
{
    int to_add = 0;

    if (w->cfg->role != ROLE_SERVER)
        return "the ports differ from this worker's";
    for (int i = 0; i < w->nports; i++) {
        const struct worker_port *wp = &w->ports[i];
        const struct control_port *up = wp->removed ? NULL : sent_port(wp, u);
        if (!up)
            continue; /* removed (worker_ports.c) */
        if (!same_key(&up->key, &wp->cfg->key)) /* the method is the key's */
            return "a port's method or key differs from this worker's";
        /* the counters are sized at start */
        if ((up->n_users == 0) != (wp->cfg->n_users == 0))
            return "users cannot be added to a port that had none, nor all removed";
        if (wp->proto.nkeys + (size_t)up->n_users > WORKER_KEYS_MAX)
            return "too many keys: replace the workers";
    }
    for (int i = 0; i < u->n_port; i++) {
        bool have = false;
        for (int k = 0; k < w->nports && !have; k++)
            have = !w->ports[k].removed && w->ports[k].cfg->port == u->ports[i].port;
        if (!have && !worker_ports_has_fd(w, u->ports[i].port))
            return "a port to add came without its sockets";
        to_add += !have;
    }
    if (to_add > worker_ports_room(w))
        return "too many ports added: replace the workers";
    return NULL;
}

struct live_counts {
    size_t kept, added, retired;
};

/* Port wp's keys against the users up lists: see the top of the file. 0, or -1 (the port's
 * key set could not be rebuilt). */
static int worker_port_apply(struct worker *w, struct worker_port *wp,
                             const struct control_port *up, struct live_counts *n)
{
    size_t nkeys = wp->proto.nkeys, mask = 0, total = nkeys;
    uint32_t *index = index_users(up, &mask);
    bool *seen = calloc((size_t)up->n_users + 1, sizeof *seen);
    ev_tstamp now = ev_now(w->loop);
    int rc = 0;

    if (!index || !seen || worker_keys_reserve(wp, nkeys + (size_t)up->n_users) < 0) {
        free(index);
        free(seen);
        return -1;
    }
    for (size_t k = wp->keys_first; k < nkeys; k++) {
        if (wp->key_retired[k])
            continue;
        long i = find_user(up, index, mask, wp->key_names[k]);
        if (i >= 0 && same_key(&up->users[i].key, &wp->keys[k])) {
            seen[i] = true; /* kept: its sessions go on, on the slot the master gave it */
            wp->key_slots[k] = up->users[i].metrics_slot;
            n->kept++;
            continue;
        }
        wp->key_retired[k] = true;
        wp->key_retired_at[k] = now;
        wp->key_slots[k] = -1;
        n->retired++;
    }
    for (int i = 0; i < up->n_users; i++)
        if (!seen[i])
            rc |= worker_keys_add(wp, total++, &up->users[i].key, up->users[i].name,
                                  up->users[i].name_len, up->users[i].metrics_slot);
    n->added += total - nkeys;
    free(index);
    free(seen);
    return rc != 0 || worker_keys_commit(wp, total) != 0 ? -1 : 0;
}

int worker_users_apply(struct worker *w, const struct control_users *u, char *why, size_t cap)
{
    struct live_counts n = {0, 0, 0};
    const char *bad = worker_users_check(w, u);
    int removed;

    if (bad) {
        snprintf(why, cap, "%s", bad);
        return -1;
    }
    if ((removed = worker_ports_apply(w, u, why, cap)) < 0) {
        worker_drain(w); /* half applied: the master replaces this worker */
        return -1;
    }
    for (int i = 0; i < w->nports; i++) {
        if (w->ports[i].removed)
            continue;
        if (worker_port_apply(w, &w->ports[i], sent_port(&w->ports[i], u), &n) != 0) {
            snprintf(why, cap, "port %u: cannot set up the new keys: draining",
                     w->ports[i].cfg->port);
            worker_drain(w);
            return -1;
        }
    }
    if ((n.retired || removed) && w->live)
        w->live->retire_until = ev_now(w->loop) + w->cfg->drain_timeout + 1;
    relay_users_retired(w, 0); /* retired users' sessions count as nobody's from now on */
    log_info("users applied live: %zu kept, %zu added, %zu removed or re-keyed (their "
             "connections close in %d s)",
             n.kept, n.added, n.retired, w->cfg->drain_timeout);
    return 0;
}

void worker_live_tick(struct worker *w)
{
    ev_tstamp now = ev_now(w->loop);
    if (w->live && w->live->retire_until > 0 && now <= w->live->retire_until + 1) {
        relay_users_retired(w, now - w->cfg->drain_timeout);
        for (int i = 0; i < w->nudp; i++)
            udp_relay_close_retired(w->udp[i], now - w->cfg->drain_timeout);
        worker_ports_reclaim(w); /* the key sets of removed ports go once their sessions did */
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
        if (msg.type == CONTROL_PORT_FD && fd >= 0) {
            if (worker_ports_keep_fd(l->w, msg.port, msg.udp != 0, fd) < 0)
                log_warn("port %u: cannot keep its new socket", msg.port);
            continue;
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
