/* sockets.c: opening and taking over the listening sockets; see sockets.h. */
#include "autoconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "log.h"
#include "netaddr.h"
#include "rp_assert.h"
#include "sdnotify.h"
#include "sockets.h"
#include "upgrade.h"

/* A descriptor handed over by a previous master or by systemd, waiting to be matched. */
struct inherited {
    int fd;
    int type;     /* SOCK_STREAM or SOCK_DGRAM */
    int slot;     /* slot it served (REUSEPROXY_FDS): -1 shared, -2 metrics */
    bool any;     /* from systemd (LISTEN_FDS): may serve any slot */
    bool used;
    struct sockaddr_storage addr;
    socklen_t len;
};

/* Sized to what was handed over (a previous master's slots x listen addresses, or systemd's
 * count), so no configuration is too large to be upgraded. */
struct inherit_list {
    struct inherited *fd;
    int n, cap;
};

static void inherit_add(struct inherit_list *l, int fd, int slot, bool any)
{
    RP_ASSERT(l->n >= 0 && l->n < l->cap);
    struct inherited *h = &l->fd[l->n];
    socklen_t tl = sizeof h->type;
    h->len = sizeof h->addr;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &h->type, &tl) < 0 ||
        getsockname(fd, (struct sockaddr *)&h->addr, &h->len) < 0)
        return;
    h->fd = fd;
    h->slot = slot;
    h->any = any;
    h->used = false;
    netaddr_set_cloexec(fd, true);
    /* systemd hands sockets over blocking unless NonBlocking=yes; the workers need them not to
     * block, or an accept() after the queue drained would stall a whole event loop */
    netaddr_set_nonblock(fd);
    l->n++;
}

/* $REUSEPROXY_FDS from a previous master (upgrade.c) and $LISTEN_FDS from systemd socket
 * activation (sdnotify.c). Returns 0, or -1 when out of memory. */
static int inherit_collect(struct inherit_list *l)
{
    struct upgrade_fd *up;
    int nup = upgrade_inherited_fds(&up);
    int nsd = sdnotify_listen_fds();

    l->n = 0;
    l->cap = (nup > 0 ? nup : 0) + nsd;
    l->fd = l->cap > 0 ? calloc((size_t)l->cap, sizeof *l->fd) : NULL;
    if (nup < 0 || (l->cap > 0 && !l->fd)) {
        free(up);
        return -1;
    }
    for (int i = 0; i < nup; i++)
        inherit_add(l, up[i].fd, up[i].slot, false);
    for (int i = 0; i < nsd; i++)
        inherit_add(l, SDNOTIFY_LISTEN_FDS_START + i, -1, true);
    free(up);
    return 0;
}

static int inherit_take(struct inherit_list *l, int type, int slot, const struct sockaddr *sa)
{
    for (int i = 0; i < l->n; i++) {
        struct inherited *h = &l->fd[i];
        if (!h->used && h->type == type && (h->slot == slot || h->any) &&
            netaddr_equal((struct sockaddr *)&h->addr, sa)) {
            h->used = true;
            return h->fd;
        }
    }
    return -1;
}

static void inherit_close_unused(struct inherit_list *l)
{
    for (int i = 0; i < l->n; i++)
        if (!l->fd[i].used) {
            log_warn("closing an inherited socket that the configuration no longer uses");
            close(l->fd[i].fd);
        }
}

/* The listen addresses config_validate() parsed: IP literals as they are, names resolved here
 * (at start-up only, by the master). */
static int listen_addrs(const struct config *c, struct sockaddr_storage *out, socklen_t *lens,
                        char *err, size_t errlen)
{
    int n = 0;
    for (int i = 0; i < c->n_listen && n < WORKER_MAX_LISTEN; i++) {
        const struct netaddr_target *t = &c->listen[i].target;
        if (t->addrlen > 0) {
            memcpy(&out[n], &t->addr, t->addrlen);
            lens[n++] = t->addrlen;
            continue;
        }
        struct addrinfo hints = {.ai_flags = AI_PASSIVE | AI_NUMERICSERV,
                                 .ai_socktype = SOCK_STREAM}, *res;
        char ps[8];
        snprintf(ps, sizeof ps, "%u", (unsigned)t->port);
        int r = getaddrinfo(t->host, ps, &hints, &res);
        if (r != 0) {
            snprintf(err, errlen, "cannot resolve listen address %s: %s", t->host, gai_strerror(r));
            return -1;
        }
        memcpy(&out[n], res->ai_addr, res->ai_addrlen);
        lens[n++] = res->ai_addrlen;
        freeaddrinfo(res);
    }
    return n;
}

static int open_one(struct inherit_list *l, int type, int slot, const struct sockaddr *sa,
                    socklen_t len, unsigned flags, char *err, size_t errlen)
{
    int fd = inherit_take(l, type, slot, sa);
    if (fd >= 0)
        return fd;
    if (sa->sa_family == AF_INET6)
        flags |= NETADDR_V6ONLY; /* so 0.0.0.0 and :: can both be listed */
    fd = type == SOCK_STREAM ? netaddr_listen_tcp(sa, len, 4096, flags)
                             : netaddr_bind_udp(sa, len, flags);
    if (fd < 0) {
        char a[80];
        snprintf(err, errlen, "cannot %s %s: %s", type == SOCK_STREAM ? "listen on" : "bind UDP",
                 netaddr_format(sa, a, sizeof a), strerror(errno));
    }
    return fd;
}

/* A server with a SIP003 plugin (plugin.h): the plugin listens on the public address, the
 * workers' TCP on the loopback address the master chose, and their UDP there too only when the
 * plugin carries it ("plugin_mode": "tcp_and_udp"); otherwise UDP stays on the public
 * address, as libev's does. A plugin has one port and one address (config_check_plugin), so
 * the loopback one replaces entry 0 in udp_addr or tcp_addr when used. */
static void plugin_addrs(const struct config *c, struct sockaddr_storage *tcp_addr,
                         socklen_t *tcp_len, struct sockaddr_storage *udp_addr, socklen_t *udp_len)
{
    const struct netaddr_target *loop = &c->plugin.local.target;

    if (!c->plugin.plugin || c->role != ROLE_SERVER)
        return;
    memcpy(&tcp_addr[0], &loop->addr, loop->addrlen);
    tcp_len[0] = loop->addrlen;
    if (c->plugin.plugin_mode == CONFIG_PLUGIN_TCP_AND_UDP) {
        memcpy(&udp_addr[0], &loop->addr, loop->addrlen);
        udp_len[0] = loop->addrlen;
    }
}

/* The options every socket of one kind gets. */
struct open_flags {
    unsigned group, tfo, tcp_tp, udp_tp;
};

/* Entry a's sockets: per port mode, TCP (one per slot, or one shared) and UDP (one per slot). */
static int open_entry(struct socket_set *s, struct inherit_list *l, const struct config *c, int a,
                      const struct sockaddr *sa, socklen_t len, const struct sockaddr *usa,
                      socklen_t ulen, enum config_balance balance, const struct open_flags *f,
                      char *err, size_t errlen)
{
    enum config_mode mode = c->ports[s->port[a]].mode;
    bool tcp = mode != MODE_UDP_ONLY, udp = mode != MODE_TCP_ONLY;

    if (tcp && balance != BALANCE_REUSEPORT) {
        int fd = open_one(l, SOCK_STREAM, -1, sa, len,
                          f->tfo | f->tcp_tp | (c->reuse_port ? NETADDR_REUSEPORT : 0), err, errlen);
        if (fd < 0)
            return -1;
        s->shared[a] = fd;
        s->nshared++;
    }
    for (int i = 0; i < s->nslots; i++) {
        if (tcp && balance == BALANCE_REUSEPORT) {
            int fd = open_one(l, SOCK_STREAM, i, sa, len, f->group | f->tfo | f->tcp_tp, err,
                              errlen);
            if (fd < 0)
                return -1;
            s->tcp[i][a] = fd;
        }
        if (udp) {
            int fd = open_one(l, SOCK_DGRAM, i, usa, ulen, f->group | f->udp_tp, err, errlen);
            if (fd < 0)
                return -1;
            s->udp[i][a] = fd;
        }
    }
    s->ntcp += tcp && balance == BALANCE_REUSEPORT;
    s->nudp += udp;
    return 0;
}

/* The master holds every socket of every slot: up to 2 per slot and listen entry (TCP and
 * UDP), plus what it needs besides. With hundreds of ports that passes a soft limit of 1024
 * early, so the soft limit is raised towards the hard one (unless "nofile" set it); when that
 * is still too low, the start fails here, naming what to raise, instead of at an EMFILE. */
#define SOCKETS_FD_MIN_SPARE 32   /* fewer spare descriptors: raise the soft limit */
#define SOCKETS_FD_WANT_SPARE 256 /* raised, to leave this many spare (if the hard one allows) */
static int sockets_check_nofile(const struct config *c, int nslots, char *err, size_t errlen)
{
    unsigned long long sockets = 2ULL * (unsigned long long)nslots * (unsigned long long)c->n_listen;
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY ||
        rl.rlim_cur >= sockets + SOCKETS_FD_MIN_SPARE)
        return 0;
    rlim_t want = sockets + SOCKETS_FD_WANT_SPARE;
    if (rl.rlim_max != RLIM_INFINITY && want > rl.rlim_max)
        want = rl.rlim_max;
    if (want > rl.rlim_cur && c->nofile <= 0) { /* a "nofile" given is the user's to change */
        struct rlimit raised = {want, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
            rl.rlim_cur = want;
    }
    if (rl.rlim_cur >= sockets + SOCKETS_FD_MIN_SPARE)
        return 0;
    snprintf(err, errlen,
             "%d listen addresses for %d worker slots need %llu descriptors in the master (a TCP "
             "and a UDP socket per slot each) and some to spare, but the limit is %llu: raise "
             "\"nofile\" (and the hard limit, LimitNOFILE= under systemd)",
             c->n_listen, nslots, sockets, (unsigned long long)rl.rlim_cur);
    return -1;
}

/* The sockets a running set already has, offered as if inherited: each is taken by the entry
 * of the same type, slot and address, and the others are left alone (the running workers still
 * use them). */
static int inherit_from_set(struct inherit_list *l, const struct socket_set *cur)
{
    l->n = 0;
    l->cap = cur->nslots * cur->naddrs * 2 + cur->naddrs + 1;
    if (!(l->fd = calloc((size_t)l->cap, sizeof *l->fd)))
        return -1;
    for (int a = 0; a < cur->naddrs; a++) {
        for (int i = 0; i < cur->nslots; i++) {
            if (cur->tcp[i][a] > 0)
                inherit_add(l, cur->tcp[i][a], i, false);
            if (cur->udp[i][a] > 0)
                inherit_add(l, cur->udp[i][a], i, false);
        }
        if (cur->shared[a] > 0)
            inherit_add(l, cur->shared[a], -1, false);
    }
    if (cur->metrics > 0)
        inherit_add(l, cur->metrics, -2, false);
    return 0;
}

/* sockets_open(), or with cur, sockets_reopen(): the sockets come from cur where it has them. */
static int sockets_open_from(struct socket_set *s, const struct socket_set *cur,
                             const struct config *c, int nslots, enum config_balance balance,
                             char *err, size_t errlen)
{
    if (sockets_check_nofile(c, nslots, err, errlen) < 0)
        return -1;
    /* WORKER_MAX_LISTEN of each: too large for the stack */
    struct sockaddr_storage *addr = calloc(2 * WORKER_MAX_LISTEN, sizeof *addr);
    struct sockaddr_storage *uaddr = addr ? addr + WORKER_MAX_LISTEN : NULL;
    socklen_t len[WORKER_MAX_LISTEN], ulen[WORKER_MAX_LISTEN];
    struct inherit_list *l = calloc(1, sizeof *l);

    memset(s, 0, sizeof *s);
    if (!l || !addr || nslots < 1 || nslots > SOCKETS_MAX_SLOTS) {
        snprintf(err, errlen, !l || !addr ? "out of memory" : "bad number of worker slots %d",
                 nslots);
        free(l);
        free(addr);
        return -1;
    }
    s->nslots = nslots;
    if ((cur ? inherit_from_set(l, cur) : inherit_collect(l)) < 0) {
        snprintf(err, errlen, "cannot take over the inherited sockets: out of memory");
        free(l);
        free(addr);
        return -1;
    }
    int n = listen_addrs(c, addr, len, err, errlen);
    if (n < 0)
        goto fail;
    RP_ASSERT(n <= WORKER_MAX_LISTEN); /* the set's arrays hold one socket per entry */
    s->naddrs = n;
    memcpy(uaddr, addr, (size_t)n * sizeof *addr);
    memcpy(ulen, len, (size_t)n * sizeof *len);
    plugin_addrs(c, addr, len, uaddr, ulen);
    /* Several slots always need one SO_REUSEPORT group; a single process sets it on request so
     * that independent instances (systemd template units) can share the port. */
    /* The redir role: TPROXY delivers other hosts' traffic only to transparent sockets, and
     * its datagrams carry where they were going; every slot's socket alike (redir.h). */
    bool redir = c->role == ROLE_REDIR;
    struct open_flags f = {
        .group = (nslots > 1 || c->reuse_port) ? NETADDR_REUSEPORT : 0,
        .tfo = c->fast_open ? NETADDR_FASTOPEN : 0,
        .tcp_tp = redir && c->tcp_redir == TCP_REDIR_TPROXY ? NETADDR_TRANSPARENT : 0,
        .udp_tp = redir ? NETADDR_TRANSPARENT | NETADDR_ORIGDST : 0};
    for (int a = 0; a < n; a++) {
        s->port[a] = c->listen_port ? c->listen_port[a] : 0;
        if (open_entry(s, l, c, a, (struct sockaddr *)&addr[a], len[a],
                       (struct sockaddr *)&uaddr[a], ulen[a], balance, &f, err, errlen) < 0)
            goto fail;
    }
    if (c->has_metrics) {
        const struct netaddr_target *t = &c->metrics.target; /* an IP literal: config_validate */
        s->metrics = open_one(l, SOCK_STREAM, -2, (const struct sockaddr *)&t->addr, t->addrlen, 0,
                              err, errlen);
        if (s->metrics < 0) {
            /* say which key the address came from: a busy port is a metrics_address to
             * change, not a listening address (issue 13 item 11) */
            char why[256];
            snprintf(why, sizeof why, "%s", err);
            snprintf(err, errlen, "metrics_address: %s", why);
            s->metrics = 0;
            goto fail;
        }
    }
    if (!cur)
        inherit_close_unused(l);
    free(l->fd);
    free(l);
    free(addr);
    return 0;
fail:
    free(l->fd);
    free(l);
    free(addr);
    if (cur)
        sockets_close_unshared(s, cur);
    else
        sockets_close(s);
    return -1;
}

int sockets_open(struct socket_set *s, const struct config *c, int nslots,
                 enum config_balance balance, char *err, size_t errlen)
{
    return sockets_open_from(s, NULL, c, nslots, balance, err, errlen);
}

int sockets_reopen(struct socket_set *s, const struct socket_set *cur, const struct config *c,
                   enum config_balance balance, char *err, size_t errlen)
{
    return sockets_open_from(s, cur, c, cur->nslots, balance, err, errlen);
}

static void close_if(int *fd)
{
    if (*fd > 0)
        close(*fd);
    *fd = 0;
}

void sockets_close(struct socket_set *s)
{
    for (int i = 0; i < s->nslots; i++)
        for (int a = 0; a < WORKER_MAX_LISTEN; a++) {
            close_if(&s->tcp[i][a]);
            close_if(&s->udp[i][a]);
        }
    for (int a = 0; a < WORKER_MAX_LISTEN; a++)
        close_if(&s->shared[a]);
    close_if(&s->metrics);
    s->ntcp = s->nudp = s->nshared = 0;
}

bool sockets_contains(const struct socket_set *s, int fd)
{
    if (fd <= 0)
        return false;
    for (int i = 0; i < s->nslots; i++)
        for (int a = 0; a < s->naddrs; a++)
            if (s->tcp[i][a] == fd || s->udp[i][a] == fd)
                return true;
    for (int a = 0; a < s->naddrs; a++)
        if (s->shared[a] == fd)
            return true;
    return s->metrics == fd;
}

void sockets_close_unshared(struct socket_set *s, const struct socket_set *keep)
{
    for (int a = 0; a < WORKER_MAX_LISTEN; a++) {
        for (int i = 0; i < s->nslots; i++) {
            if (!sockets_contains(keep, s->tcp[i][a]))
                close_if(&s->tcp[i][a]);
            if (!sockets_contains(keep, s->udp[i][a]))
                close_if(&s->udp[i][a]);
        }
        if (!sockets_contains(keep, s->shared[a]))
            close_if(&s->shared[a]);
    }
    if (!sockets_contains(keep, s->metrics))
        close_if(&s->metrics);
}

static int export_one(char *out, size_t cap, size_t *at, int slot, int fd)
{
    int k = snprintf(out + *at, cap - *at, "%s%d:%d", *at ? "," : "", slot, fd);
    if (k < 0 || (size_t)k >= cap - *at || netaddr_set_cloexec(fd, false) < 0)
        return -1;
    *at += k;
    return 0;
}

/* Every descriptor of the set, in $REUSEPROXY_FDS order. The new master matches each by its
 * type, slot and address (with the port), so entries it no longer has are left out. */
static int export_all(const struct socket_set *s, char *out, size_t cap)
{
    size_t at = 0;
    out[0] = 0;
    for (int i = 0; i < s->nslots; i++)
        for (int a = 0; a < s->naddrs; a++)
            if ((s->tcp[i][a] > 0 && export_one(out, cap, &at, i, s->tcp[i][a]) < 0) ||
                (s->udp[i][a] > 0 && export_one(out, cap, &at, i, s->udp[i][a]) < 0))
                return -1;
    for (int a = 0; a < s->naddrs; a++)
        if (s->shared[a] > 0 && export_one(out, cap, &at, -1, s->shared[a]) < 0)
            return -1;
    if (s->metrics > 0 && export_one(out, cap, &at, -2, s->metrics) < 0)
        return -1;
    return 0;
}

char *sockets_export(const struct socket_set *s)
{
    /* "slot:fd," is at most 4 + 1 + 10 + 1 characters: allocate for slots x listen entries */
    size_t n = (size_t)s->nslots * (size_t)(s->ntcp + s->nudp) + (size_t)s->nshared + 1;
    size_t cap = n * 16 + 1;
    char *out = malloc(cap);
    if (out && export_all(s, out, cap) < 0) {
        free(out);
        return NULL;
    }
    return out;
}
