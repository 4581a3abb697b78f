/* test_resolve.c: the resolver against a fake DNS server on 127.0.0.1, served on the same libev
 * loop (so a blocked loop would stall the answer too). The server answers A/AAAA from a table
 * with chosen TTLs, says NXDOMAIN for unknown names, and can drop or delay chosen names. */
#include "autoconfig.h"

#include "resolve.h"
#include "unit.h"

#include <arpa/inet.h>
#include <ev.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define T_A 1
#define T_AAAA 28
#define T_TXT 16

struct fake_rule {
    const char *name; /* "*.x" matches any name ending in ".x" */
    int type;
    uint32_t ttl;
    const char *addr;
};

static const struct fake_rule fake_rules[] = {
    {"v4.test", T_A, 300, "192.0.2.10"},
    {"v4.test", T_A, 300, "192.0.2.11"},
    {"v6.test", T_AAAA, 300, "2001:db8::6"},
    {"both.test", T_AAAA, 300, "2001:db8::20"},
    {"both.test", T_A, 300, "192.0.2.20"},
    {"both.test", T_AAAA, 300, "2001:db8::21"},
    {"short.test", T_A, 1, "192.0.2.30"},
    {"mixed.test", T_A, 600, "192.0.2.40"},
    {"mixed.test", T_AAAA, 1, "2001:db8::40"},
    {"slow.test", T_A, 300, "192.0.2.50"},
    {"drop.test", T_A, 300, "192.0.2.60"},
    {"nodata.test", T_TXT, 300, NULL},
    {"many.test", T_A, 300, "10.0.0.1"},
    {"many.test", T_A, 300, "10.0.0.2"},
    {"many.test", T_A, 300, "10.0.0.3"},
    {"many.test", T_A, 300, "10.0.0.4"},
    {"many.test", T_A, 300, "10.0.0.5"},
    {"many.test", T_A, 300, "10.0.0.6"},
    {"many.test", T_A, 300, "10.0.0.7"},
    {"many.test", T_A, 300, "10.0.0.8"},
    {"many.test", T_A, 300, "10.0.0.9"},
    {"many.test", T_A, 300, "10.0.0.10"},
    {"*.gen.test", T_A, 300, "198.51.100.1"},
};
#define FAKE_NRULES ((int)(sizeof fake_rules / sizeof fake_rules[0]))

struct fake_delayed {
    ev_timer timer;
    struct fake_dns *dns;
    struct fake_delayed *next;
    uint8_t buf[512];
    size_t len;
    struct sockaddr_in peer;
};

struct fake_dns {
    struct ev_loop *loop;
    int fd;
    int port;
    ev_io io;
    bool drop_all;
    const char *drop_name;
    const char *slow_name;
    double slow_delay;
    int queries;
    char last_name[256];
    struct fake_delayed *delayed;
};

static bool fake_match(const char *rule, const char *name)
{
    if (rule[0] == '*') {
        size_t rl = strlen(rule + 1), nl = strlen(name);
        return nl > rl && strcmp(name + nl - rl, rule + 1) == 0;
    }
    return strcmp(rule, name) == 0;
}

static void put16(uint8_t *p, unsigned v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

/* Builds the answer to query q (RFC 1035 section 4.1). Returns its length, 0 to stay silent. */
static size_t fake_answer(struct fake_dns *f, const uint8_t *q, size_t qlen, uint8_t *out,
                          size_t cap)
{
    char name[256];
    size_t off = 12, nlen = 0;
    if (qlen < 12 || q[4] != 0 || q[5] != 1)
        return 0;
    while (off < qlen && q[off] != 0) {
        size_t l = q[off++];
        if (l > 63 || off + l > qlen || nlen + l + 1 >= sizeof name)
            return 0;
        if (nlen)
            name[nlen++] = '.';
        for (size_t i = 0; i < l; i++) {
            uint8_t c = q[off + i];
            name[nlen++] = (char)(c >= 'A' && c <= 'Z' ? c | 0x20 : c);
        }
        off += l;
    }
    name[nlen] = '\0';
    if (off + 5 > qlen)
        return 0;
    int qtype = q[off + 1] << 8 | q[off + 2];
    size_t qend = off + 5;
    snprintf(f->last_name, sizeof f->last_name, "%s", name);

    bool known = false;
    size_t n = qend, an = 0;
    memcpy(out, q, qend); /* id, then the question echoed */
    for (int i = 0; i < FAKE_NRULES; i++) {
        const struct fake_rule *rule = &fake_rules[i];
        if (!fake_match(rule->name, name))
            continue;
        known = true;
        if (rule->type != qtype || !rule->addr)
            continue;
        size_t rdlen = qtype == T_A ? 4 : 16;
        if (n + 12 + rdlen > cap)
            break;
        put16(out + n, 0xc00c); /* pointer to the question's name */
        put16(out + n + 2, (unsigned)qtype);
        put16(out + n + 4, 1);
        put16(out + n + 6, rule->ttl >> 16);
        put16(out + n + 8, rule->ttl & 0xffff);
        put16(out + n + 10, (unsigned)rdlen);
        inet_pton(qtype == T_A ? AF_INET : AF_INET6, rule->addr, out + n + 12);
        n += 12 + rdlen;
        an++;
    }
    out[2] = (uint8_t)(0x80 | (q[2] & 0x01)); /* QR, RD copied */
    out[3] = (uint8_t)(0x80 | (known ? 0 : 3)); /* RA, NOERROR or NXDOMAIN */
    put16(out + 4, 1);
    put16(out + 6, (unsigned)an);
    put16(out + 8, 0);
    put16(out + 10, 0);
    return n;
}

static void fake_delayed_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct fake_delayed *d = (struct fake_delayed *)w;
    sendto(d->dns->fd, d->buf, d->len, 0, (struct sockaddr *)&d->peer, sizeof d->peer);
}

static void fake_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct fake_dns *f = w->data;
    uint8_t q[512], a[512];
    struct sockaddr_in peer;
    socklen_t plen = sizeof peer;
    ssize_t got = recvfrom(f->fd, q, sizeof q, 0, (struct sockaddr *)&peer, &plen);
    if (got <= 0)
        return;
    f->queries++;
    size_t n = fake_answer(f, q, (size_t)got, a, sizeof a);
    if (n == 0 || f->drop_all || (f->drop_name && strcmp(f->last_name, f->drop_name) == 0))
        return;
    if (f->slow_name && strcmp(f->last_name, f->slow_name) == 0) {
        struct fake_delayed *d = calloc(1, sizeof *d);
        if (!d)
            return;
        d->dns = f;
        memcpy(d->buf, a, n);
        d->len = n;
        d->peer = peer;
        d->next = f->delayed;
        f->delayed = d;
        ev_timer_init(&d->timer, fake_delayed_cb, f->slow_delay, 0.);
        ev_timer_start(loop, &d->timer);
        return;
    }
    sendto(f->fd, a, n, 0, (struct sockaddr *)&peer, plen);
}

static int fake_start(struct fake_dns *f, struct ev_loop *loop)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof sin;
    memset(f, 0, sizeof *f);
    f->loop = loop;
    f->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (f->fd < 0)
        return -1;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(f->fd, (struct sockaddr *)&sin, sizeof sin) < 0 ||
        getsockname(f->fd, (struct sockaddr *)&sin, &len) < 0)
        return -1;
    f->port = ntohs(sin.sin_port);
    ev_io_init(&f->io, fake_io_cb, f->fd, EV_READ);
    f->io.data = f;
    ev_io_start(loop, &f->io);
    return 0;
}

static void fake_stop(struct fake_dns *f)
{
    ev_io_stop(f->loop, &f->io);
    close(f->fd);
    while (f->delayed) {
        struct fake_delayed *d = f->delayed;
        f->delayed = d->next;
        ev_timer_stop(f->loop, &d->timer);
        free(d);
    }
}

/* ---- Helpers for the tests. */

static double now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct got {
    int calls;
    int status;
    struct resolve_result res;
    double at;
};

static void got_cb(void *arg, int status, const struct resolve_result *res)
{
    struct got *g = arg;
    g->calls++;
    g->status = status;
    g->res = *res;
    g->at = now_mono();
}

static void guard_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    *(bool *)w->data = true;
}

/* Runs the loop until *calls becomes nonzero (if given) or secs pass. */
static void run_loop(struct ev_loop *loop, double secs, const int *calls)
{
    bool expired = false;
    ev_timer guard;
    ev_timer_init(&guard, guard_cb, secs, 0.);
    guard.data = &expired;
    ev_timer_start(loop, &guard);
    while (!expired && !(calls && *calls))
        ev_run(loop, EVRUN_ONCE);
    ev_timer_stop(loop, &guard);
}

static const char *addr_text(const struct resolve_result *res, int i)
{
    static char bufs[4][INET6_ADDRSTRLEN];
    static int slot;
    char *buf = bufs[slot++ % 4];
    const struct sockaddr_storage *ss = &res->addr[i];
    if (i >= res->count)
        return "(none)";
    if (ss->ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, buf, INET6_ADDRSTRLEN);
    else if (ss->ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, buf,
                  INET6_ADDRSTRLEN);
    else
        return "(bad family)";
    return buf;
}

struct fixture {
    struct ev_loop *loop;
    struct fake_dns dns;
    struct resolver *r;
    char err[256];
};

static int fixture_start(struct fixture *fx, bool ipv6_first)
{
    char servers[64];
    memset(fx, 0, sizeof *fx);
    fx->loop = ev_loop_new(EVFLAG_AUTO);
    if (!fx->loop || fake_start(&fx->dns, fx->loop) < 0)
        return -1;
    snprintf(servers, sizeof servers, "127.0.0.1:%d", fx->dns.port);
    fx->r = resolver_new(fx->loop, servers, ipv6_first, fx->err, sizeof fx->err);
    return fx->r ? 0 : -1;
}

static void fixture_stop(struct fixture *fx)
{
    resolver_free(fx->r);
    fake_stop(&fx->dns);
    ev_loop_destroy(fx->loop);
}

/* Looks name up and waits (at most 3 s) for the callback. Returns what resolve_lookup did. */
static int lookup_wait(struct fixture *fx, const char *name, struct got *g)
{
    struct resolve_query *q = NULL;
    struct resolve_result out;
    memset(g, 0, sizeof *g);
    int rc = resolve_lookup(fx->r, name, &out, got_cb, g, &q);
    if (rc == 0)
        run_loop(fx->loop, 3.0, &g->calls);
    else
        g->res = out;
    return rc;
}

/* ---- Tests. */

TEST(test_resolve_ip_literals_answered_at_once)
{
    struct fixture fx;
    struct resolve_query *q = (struct resolve_query *)&fx; /* must be reset to NULL */
    struct resolve_result out;
    struct got g = {0};
    CHECK(fixture_start(&fx, false) == 0);
    CHECK_INT(resolve_lookup(fx.r, "192.0.2.1", &out, got_cb, &g, &q), 1);
    CHECK(q == NULL);
    CHECK_INT(out.count, 1);
    CHECK_INT(out.addr[0].ss_family, AF_INET);
    CHECK_INT(out.len[0], sizeof(struct sockaddr_in));
    CHECK_STR(addr_text(&out, 0), "192.0.2.1");
    CHECK_INT(((struct sockaddr_in *)&out.addr[0])->sin_port, 0);
    CHECK_INT(resolve_lookup(fx.r, "2001:db8::1", &out, got_cb, &g, &q), 1);
    CHECK_INT(out.count, 1);
    CHECK_INT(out.addr[0].ss_family, AF_INET6);
    CHECK_INT(out.len[0], sizeof(struct sockaddr_in6));
    CHECK_STR(addr_text(&out, 0), "2001:db8::1");
    run_loop(fx.loop, 0.1, NULL);
    CHECK_INT(g.calls, 0);
    CHECK_INT(fx.dns.queries, 0);
    fixture_stop(&fx);
}

TEST(test_resolve_ipv4_answer)
{
    struct fixture fx;
    struct got g;
    CHECK(fixture_start(&fx, false) == 0);
    CHECK_INT(lookup_wait(&fx, "v4.test", &g), 0);
    CHECK_INT(g.calls, 1);
    CHECK_INT(g.status, 0);
    CHECK_INT(g.res.count, 2);
    CHECK_STR(addr_text(&g.res, 0), "192.0.2.10");
    CHECK_STR(addr_text(&g.res, 1), "192.0.2.11");
    CHECK_INT(g.res.len[0], sizeof(struct sockaddr_in));
    CHECK_INT(fx.dns.queries, 2); /* A and AAAA */
    fixture_stop(&fx);
}

TEST(test_resolve_ipv6_only_answer)
{
    struct fixture fx;
    struct got g;
    CHECK(fixture_start(&fx, false) == 0);
    CHECK_INT(lookup_wait(&fx, "v6.test", &g), 0);
    CHECK_INT(g.calls, 1);
    CHECK_INT(g.status, 0);
    CHECK_INT(g.res.count, 1);
    CHECK_INT(g.res.addr[0].ss_family, AF_INET6);
    CHECK_INT(g.res.len[0], sizeof(struct sockaddr_in6));
    CHECK_STR(addr_text(&g.res, 0), "2001:db8::6");
    fixture_stop(&fx);
}

TEST(test_resolve_orders_ipv4_first)
{
    struct fixture fx;
    struct got g;
    CHECK(fixture_start(&fx, false) == 0);
    CHECK_INT(lookup_wait(&fx, "both.test", &g), 0);
    CHECK_INT(g.status, 0);
    CHECK_INT(g.res.count, 3);
    CHECK_STR(addr_text(&g.res, 0), "192.0.2.20");
    CHECK_STR(addr_text(&g.res, 1), "2001:db8::20");
    CHECK_STR(addr_text(&g.res, 2), "2001:db8::21");
    fixture_stop(&fx);
}

TEST(test_resolve_orders_ipv6_first_when_asked)
{
    struct fixture fx;
    struct got g;
    struct resolve_result out;
    struct resolve_query *q;
    CHECK(fixture_start(&fx, true) == 0);
    CHECK_INT(lookup_wait(&fx, "both.test", &g), 0);
    CHECK_INT(g.status, 0);
    CHECK_INT(g.res.count, 3);
    CHECK_STR(addr_text(&g.res, 0), "2001:db8::20");
    CHECK_STR(addr_text(&g.res, 1), "2001:db8::21");
    CHECK_STR(addr_text(&g.res, 2), "192.0.2.20");
    /* The cached copy keeps the order. */
    CHECK_INT(resolve_lookup(fx.r, "both.test", &out, got_cb, &g, &q), 1);
    CHECK_INT(out.count, 3);
    CHECK_STR(addr_text(&out, 0), "2001:db8::20");
    CHECK_STR(addr_text(&out, 2), "192.0.2.20");
    fixture_stop(&fx);
}

TEST(test_resolve_caps_addresses)
{
    struct fixture fx;
    struct got g;
    CHECK(fixture_start(&fx, false) == 0);
    CHECK_INT(lookup_wait(&fx, "many.test", &g), 0);
    CHECK_INT(g.status, 0);
    CHECK_INT(g.res.count, RESOLVE_MAX_ADDRS);
    CHECK_STR(addr_text(&g.res, 0), "10.0.0.1");
    CHECK_STR(addr_text(&g.res, 7), "10.0.0.8");
    fixture_stop(&fx);
}

TEST(test_resolve_cache_answers_second_lookup_without_query)
{
    struct fixture fx;
    struct got g;
    struct resolve_result out;
    struct resolve_query *q = NULL;
    CHECK(fixture_start(&fx, false) == 0);
    CHECK_INT(lookup_wait(&fx, "v4.test", &g), 0);
    CHECK_INT(g.status, 0);
    CHECK_INT(fx.dns.queries, 2);
    g.calls = 0;
    CHECK_INT(resolve_lookup(fx.r, "v4.test", &out, got_cb, &g, &q), 1);
    CHECK(q == NULL);
    CHECK_INT(out.count, 2);
    CHECK_STR(addr_text(&out, 0), "192.0.2.10");
    CHECK_STR(addr_text(&out, 1), "192.0.2.11");
    /* Case and a trailing root dot do not make another name. */
    CHECK_INT(resolve_lookup(fx.r, "V4.Test.", &out, got_cb, &g, &q), 1);
    CHECK_STR(addr_text(&out, 0), "192.0.2.10");
    run_loop(fx.loop, 0.1, NULL);
    CHECK_INT(fx.dns.queries, 2);
    CHECK_INT(g.calls, 0);
    fixture_stop(&fx);
}

TEST(test_resolve_cache_expires_after_ttl)
{
    struct fixture fx;
    struct got g;
    struct resolve_result out;
    struct resolve_query *q;
    CHECK(fixture_start(&fx, false) == 0);
    CHECK_INT(lookup_wait(&fx, "short.test", &g), 0); /* TTL 1 */
    CHECK_INT(g.status, 0);
    CHECK_INT(fx.dns.queries, 2);
    CHECK_INT(resolve_lookup(fx.r, "short.test", &out, got_cb, &g, &q), 1);
    run_loop(fx.loop, 1.3, NULL);
    CHECK_INT(lookup_wait(&fx, "short.test", &g), 0);
    CHECK_INT(g.calls, 1);
    CHECK_INT(g.status, 0);
    CHECK_STR(addr_text(&g.res, 0), "192.0.2.30");
    CHECK_INT(fx.dns.queries, 4);
    fixture_stop(&fx);
}

TEST(test_resolve_cache_keeps_smallest_ttl)
{
    struct fixture fx;
    struct got g;
    CHECK(fixture_start(&fx, false) == 0);
    CHECK_INT(lookup_wait(&fx, "mixed.test", &g), 0); /* A 600 s, AAAA 1 s */
    CHECK_INT(g.res.count, 2);
    run_loop(fx.loop, 1.3, NULL);
    CHECK_INT(lookup_wait(&fx, "mixed.test", &g), 0);
    CHECK_INT(g.status, 0);
    CHECK_INT(fx.dns.queries, 4);
    fixture_stop(&fx);
}

TEST(test_resolve_nxdomain_fails_and_is_cached_briefly)
{
    struct fixture fx;
    struct got g;
    struct resolve_result out;
    struct resolve_query *q = NULL;
    CHECK(fixture_start(&fx, false) == 0);
    CHECK_INT(lookup_wait(&fx, "nowhere.test", &g), 0);
    CHECK_INT(g.calls, 1);
    CHECK_INT(g.status, -1);
    CHECK_INT(g.res.count, 0);
    CHECK_INT(fx.dns.queries, 2);
    out.count = 5;
    CHECK_INT(resolve_lookup(fx.r, "nowhere.test", &out, got_cb, &g, &q), -1);
    CHECK(q == NULL);
    CHECK_INT(out.count, 0);
    run_loop(fx.loop, 0.1, NULL);
    CHECK_INT(fx.dns.queries, 2);
    CHECK_INT(g.calls, 1);
    fixture_stop(&fx);
}

TEST(test_resolve_name_without_addresses_fails)
{
    struct fixture fx;
    struct got g;
    CHECK(fixture_start(&fx, false) == 0);
    CHECK_INT(lookup_wait(&fx, "nodata.test", &g), 0);
    CHECK_INT(g.calls, 1);
    CHECK_INT(g.status, -1);
    CHECK_INT(g.res.count, 0);
    fixture_stop(&fx);
}

TEST(test_resolve_dropped_query_times_out)
{
    struct fixture fx;
    struct got g;
    CHECK(fixture_start(&fx, false) == 0);
    CHECK_INT(resolver_set_timeout(fx.r, 200, 2), 0);
    fx.dns.drop_name = "drop.test";
    double start = now_mono();
    CHECK_INT(lookup_wait(&fx, "drop.test", &g), 0);
    CHECK_INT(g.calls, 1);
    CHECK_INT(g.status, -1);
    CHECK_INT(g.res.count, 0);
    /* 200 ms, then 400 ms for the second try (c-ares doubles it per round). */
    CHECK(g.at - start >= 0.55);
    CHECK(g.at - start < 1.5);
    CHECK_INT(fx.dns.queries, 4); /* A and AAAA, two tries each */
    /* A timeout is not cached: the next lookup asks again. */
    fx.dns.drop_name = NULL;
    CHECK_INT(lookup_wait(&fx, "drop.test", &g), 0);
    CHECK_INT(g.status, 0);
    CHECK_STR(addr_text(&g.res, 0), "192.0.2.60");
    fixture_stop(&fx);
}

TEST(test_resolve_falls_back_to_second_server)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct fake_dns dead, live;
    struct resolve_query *q;
    struct resolve_result out;
    struct got g = {0};
    char servers[96], err[128];
    CHECK(loop && fake_start(&dead, loop) == 0 && fake_start(&live, loop) == 0);
    dead.drop_all = true;
    snprintf(servers, sizeof servers, "127.0.0.1:%d, 127.0.0.1:%d", dead.port, live.port);
    struct resolver *r = resolver_new(loop, servers, false, err, sizeof err);
    CHECK(r != NULL);
    CHECK_INT(resolver_set_timeout(r, 150, 1), 0);
    CHECK_INT(resolve_lookup(r, "v4.test", &out, got_cb, &g, &q), 0);
    run_loop(loop, 3.0, &g.calls);
    CHECK_INT(g.calls, 1);
    CHECK_INT(g.status, 0);
    CHECK_STR(addr_text(&g.res, 0), "192.0.2.10");
    CHECK_INT(dead.queries, 2);
    CHECK_INT(live.queries, 2);
    resolver_free(r);
    fake_stop(&dead);
    fake_stop(&live);
    ev_loop_destroy(loop);
}

TEST(test_resolve_cancel_suppresses_callback)
{
    struct fixture fx;
    struct got g = {0};
    struct resolve_query *q = NULL;
    struct resolve_result out;
    CHECK(fixture_start(&fx, false) == 0);
    fx.dns.slow_name = "slow.test";
    fx.dns.slow_delay = 0.2;
    CHECK_INT(resolve_lookup(fx.r, "slow.test", &out, got_cb, &g, &q), 0);
    CHECK(q != NULL);
    run_loop(fx.loop, 0.05, NULL);
    CHECK_INT(fx.dns.queries, 2);
    resolve_cancel(q);
    run_loop(fx.loop, 0.5, &g.calls);
    CHECK_INT(g.calls, 0);
    /* The answer still arrived and was kept. */
    CHECK_INT(resolve_lookup(fx.r, "slow.test", &out, got_cb, &g, &q), 1);
    CHECK_STR(addr_text(&out, 0), "192.0.2.50");
    CHECK_INT(fx.dns.queries, 2);
    resolve_cancel(NULL);
    fixture_stop(&fx);
}

TEST(test_resolve_shares_one_query_between_callers)
{
    struct fixture fx;
    struct got g1 = {0}, g2 = {0};
    struct resolve_query *q1, *q2;
    struct resolve_result out;
    CHECK(fixture_start(&fx, false) == 0);
    CHECK_INT(resolve_lookup(fx.r, "v4.test", &out, got_cb, &g1, &q1), 0);
    CHECK_INT(resolve_lookup(fx.r, "V4.TEST", &out, got_cb, &g2, &q2), 0);
    CHECK(q1 != q2);
    run_loop(fx.loop, 3.0, &g2.calls);
    CHECK_INT(g1.calls, 1);
    CHECK_INT(g2.calls, 1);
    CHECK_INT(g1.status, 0);
    CHECK_INT(g2.status, 0);
    CHECK_STR(addr_text(&g2.res, 1), "192.0.2.11");
    CHECK_INT(fx.dns.queries, 2);
    fixture_stop(&fx);
}

TEST(test_resolve_cancel_one_of_two_callers)
{
    struct fixture fx;
    struct got g1 = {0}, g2 = {0};
    struct resolve_query *q1, *q2;
    struct resolve_result out;
    CHECK(fixture_start(&fx, false) == 0);
    CHECK_INT(resolve_lookup(fx.r, "v6.test", &out, got_cb, &g1, &q1), 0);
    CHECK_INT(resolve_lookup(fx.r, "v6.test", &out, got_cb, &g2, &q2), 0);
    resolve_cancel(q1);
    run_loop(fx.loop, 3.0, &g2.calls);
    run_loop(fx.loop, 0.05, NULL);
    CHECK_INT(g1.calls, 0);
    CHECK_INT(g2.calls, 1);
    CHECK_INT(g2.status, 0);
    CHECK_STR(addr_text(&g2.res, 0), "2001:db8::6");
    fixture_stop(&fx);
}

/* A callback that cancels its sibling and its own handle and starts a new lookup. */
struct reentry {
    struct fixture *fx;
    struct resolve_query *self, *sibling;
    int calls, nested_rc;
    struct resolve_result nested;
};

static void reentry_cb(void *arg, int status, const struct resolve_result *res)
{
    struct reentry *re = arg;
    struct resolve_query *q;
    re->calls++;
    resolve_cancel(re->sibling);
    resolve_cancel(re->self); /* a no-op from inside its own callback */
    re->nested_rc = resolve_lookup(re->fx->r, "v4.test", &re->nested, got_cb, NULL, &q);
}

TEST(test_resolve_callback_may_cancel_and_look_up)
{
    struct fixture fx;
    struct reentry re = {0};
    struct got g2 = {0};
    struct resolve_result out;
    CHECK(fixture_start(&fx, false) == 0);
    re.fx = &fx;
    CHECK_INT(resolve_lookup(fx.r, "v4.test", &out, reentry_cb, &re, &re.self), 0);
    CHECK_INT(resolve_lookup(fx.r, "v4.test", &out, got_cb, &g2, &re.sibling), 0);
    run_loop(fx.loop, 3.0, &re.calls);
    run_loop(fx.loop, 0.05, NULL);
    CHECK_INT(re.calls, 1);
    CHECK_INT(g2.calls, 0);
    CHECK_INT(re.nested_rc, 1); /* already cached when the callbacks run */
    CHECK_STR(addr_text(&re.nested, 0), "192.0.2.10");
    fixture_stop(&fx);
}

struct free_inside {
    struct fixture *fx;
    int calls;
};

static void free_inside_cb(void *arg, int status, const struct resolve_result *res)
{
    struct free_inside *fi = arg;
    fi->calls++;
    resolver_free(fi->fx->r);
}

TEST(test_resolver_free_from_callback_stops_other_callbacks)
{
    struct fixture fx;
    struct free_inside fi = {0};
    struct got g = {0}, g3 = {0};
    struct resolve_query *q;
    struct resolve_result out;
    CHECK(fixture_start(&fx, false) == 0);
    fi.fx = &fx;
    fx.dns.slow_name = "slow.test";
    fx.dns.slow_delay = 0.3;
    CHECK_INT(resolve_lookup(fx.r, "v4.test", &out, free_inside_cb, &fi, &q), 0);
    CHECK_INT(resolve_lookup(fx.r, "v4.test", &out, got_cb, &g, &q), 0);
    CHECK_INT(resolve_lookup(fx.r, "slow.test", &out, got_cb, &g3, &q), 0);
    run_loop(fx.loop, 3.0, &fi.calls);
    run_loop(fx.loop, 0.5, NULL);
    CHECK_INT(fi.calls, 1);
    CHECK_INT(g.calls, 0);
    CHECK_INT(g3.calls, 0);
    fake_stop(&fx.dns);
    ev_loop_destroy(fx.loop);
}

static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    ++*(int *)w->data;
}

TEST(test_resolve_loop_keeps_running_during_slow_answer)
{
    struct fixture fx;
    struct got g = {0};
    struct resolve_query *q;
    struct resolve_result out;
    ev_timer tick;
    int ticks = 0;
    CHECK(fixture_start(&fx, false) == 0);
    fx.dns.slow_name = "slow.test";
    fx.dns.slow_delay = 0.5;
    ev_timer_init(&tick, tick_cb, 0.05, 0.05);
    tick.data = &ticks;
    ev_timer_start(fx.loop, &tick);
    double start = now_mono();
    CHECK_INT(resolve_lookup(fx.r, "slow.test", &out, got_cb, &g, &q), 0);
    CHECK(now_mono() - start < 0.2); /* far less than the 0.5 s the answer takes */
    run_loop(fx.loop, 3.0, &g.calls);
    ev_timer_stop(fx.loop, &tick);
    CHECK_INT(g.calls, 1);
    CHECK_INT(g.status, 0);
    CHECK_STR(addr_text(&g.res, 0), "192.0.2.50");
    CHECK(g.at - start >= 0.45);
    CHECK(ticks >= 6);
    fixture_stop(&fx);
}

TEST(test_resolve_localhost_from_hosts_file)
{
    struct fixture fx;
    struct got g = {0};
    struct resolve_query *q = NULL;
    struct resolve_result out;
    CHECK(fixture_start(&fx, false) == 0);
    /* /etc/hosts (or RFC 6761 section 6.3 when it lacks the name) answers without DNS. */
    CHECK_INT(resolve_lookup(fx.r, "localhost", &out, got_cb, &g, &q), 1);
    CHECK(q == NULL);
    CHECK(out.count >= 1);
    for (int i = 0; i < out.count; i++) {
        const char *a = addr_text(&out, i);
        CHECK(strcmp(a, "127.0.0.1") == 0 || strcmp(a, "::1") == 0);
    }
    if (out.count == 2)
        CHECK_STR(addr_text(&out, 0), "127.0.0.1"); /* IPv4 first */
    CHECK_INT(resolve_lookup(fx.r, "LOCALHOST.", &out, got_cb, &g, &q), 1);
    run_loop(fx.loop, 0.1, NULL);
    CHECK_INT(fx.dns.queries, 0);
    CHECK_INT(g.calls, 0);
    fixture_stop(&fx);
}

TEST(test_resolve_rejects_bad_names)
{
    struct fixture fx;
    struct got g = {0};
    struct resolve_query *q = NULL;
    struct resolve_result out;
    char longname[300];
    CHECK(fixture_start(&fx, false) == 0);
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    const char *bad[] = {"", ".", "a..b", ".lead.test", "sp ace.test", "semi;colon.test",
                         "fe80::1%eth0", "[::1]", "tab\t.test", "\xc3\xa9.test", longname};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_INT(resolve_lookup(fx.r, bad[i], &out, got_cb, &g, &q), -1);
    /* A 64-character label is one too many (RFC 1035 section 2.3.4). */
    char label[80];
    memset(label, 'b', 64);
    snprintf(label + 64, sizeof label - 64, ".test");
    CHECK_INT(resolve_lookup(fx.r, label, &out, got_cb, &g, &q), -1);
    CHECK_INT(resolve_lookup(NULL, "v4.test", &out, got_cb, &g, &q), -1);
    CHECK_INT(resolve_lookup(fx.r, NULL, &out, got_cb, &g, &q), -1);
    CHECK_INT(resolve_lookup(fx.r, "v4.test", NULL, got_cb, &g, &q), -1);
    CHECK_INT(resolve_lookup(fx.r, "v4.test", &out, NULL, &g, &q), -1);
    CHECK_INT(resolve_lookup(fx.r, "v4.test", &out, got_cb, &g, NULL), -1);
    run_loop(fx.loop, 0.1, NULL);
    CHECK_INT(fx.dns.queries, 0);
    CHECK_INT(g.calls, 0);
    fixture_stop(&fx);
}

TEST(test_resolver_rejects_bad_nameservers)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    char err[200];
    const char *bad[] = {"", "not-an-ip", "127.0.0.1:99999", "127.0.0.1:0", "127.0.0.1:53x",
                         "1.2.3.4,", ",", "[::1", "[::1]53", "example.com:53", "::1:53:x",
                         "1.1.1.1,2.2.2.2,3.3.3.3,4.4.4.4,5.5.5.5,6.6.6.6,7.7.7.7,8.8.8.8,9.9.9.9"};
    CHECK(loop != NULL);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        CHECK(resolver_new(loop, bad[i], false, err, sizeof err) == NULL);
        CHECK_CONTAINS(err, "invalid nameservers");
    }
    const char *good[] = {"127.0.0.1", "127.0.0.1:5353", "[::1]:53", "::1", "[2001:db8::1]",
                          "1.2.3.4:53, [2001:db8::1]:5353"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        struct resolver *r = resolver_new(loop, good[i], false, err, sizeof err);
        CHECK(r != NULL);
        resolver_free(r);
    }
    struct resolver *sys = resolver_new(loop, NULL, false, err, sizeof err);
    CHECK(sys != NULL);
    resolver_free(sys);
    CHECK(resolver_new(NULL, NULL, false, err, sizeof err) == NULL);
    CHECK_CONTAINS(err, "no event loop");
    ev_loop_destroy(loop);
}

TEST(test_resolver_set_timeout_refused_while_pending)
{
    struct fixture fx;
    struct got g = {0};
    struct resolve_query *q;
    struct resolve_result out;
    CHECK(fixture_start(&fx, false) == 0);
    CHECK_INT(resolver_set_timeout(fx.r, 0, 2), -1);
    CHECK_INT(resolver_set_timeout(fx.r, 100, 0), -1);
    CHECK_INT(resolve_lookup(fx.r, "v4.test", &out, got_cb, &g, &q), 0);
    CHECK_INT(resolver_set_timeout(fx.r, 100, 1), -1);
    run_loop(fx.loop, 3.0, &g.calls);
    CHECK_INT(g.status, 0);
    CHECK_INT(resolver_set_timeout(fx.r, 100, 1), 0);
    CHECK_INT(lookup_wait(&fx, "v6.test", &g), 0);
    CHECK_INT(g.status, 0);
    fixture_stop(&fx);
}

TEST(test_resolver_free_with_pending_queries_calls_nobody)
{
    struct fixture fx;
    struct got g1 = {0}, g2 = {0};
    struct resolve_query *q1, *q2;
    struct resolve_result out;
    CHECK(fixture_start(&fx, false) == 0);
    fx.dns.slow_name = "slow.test";
    fx.dns.slow_delay = 0.2;
    CHECK_INT(resolve_lookup(fx.r, "slow.test", &out, got_cb, &g1, &q1), 0);
    CHECK_INT(resolve_lookup(fx.r, "v4.test", &out, got_cb, &g2, &q2), 0);
    resolver_free(fx.r);
    run_loop(fx.loop, 0.4, NULL);
    CHECK_INT(g1.calls, 0);
    CHECK_INT(g2.calls, 0);
    /* No watcher of the resolver is left: with the server gone, the loop has nothing to do. */
    fake_stop(&fx.dns);
    alarm(5);
    double start = now_mono();
    ev_run(fx.loop, 0);
    CHECK(now_mono() - start < 0.5);
    ev_loop_destroy(fx.loop);
}

TEST(test_resolve_cache_evicts_least_recently_used)
{
    struct fixture fx;
    struct got g;
    struct resolve_result out;
    struct resolve_query *q;
    char name[64];
    CHECK(fixture_start(&fx, false) == 0);
    for (int i = 0; i < RESOLVE_CACHE_MAX; i++) {
        snprintf(name, sizeof name, "h%d.gen.test", i);
        CHECK_INT(lookup_wait(&fx, name, &g), 0);
        CHECK_INT(g.status, 0);
    }
    CHECK_INT(fx.dns.queries, 2 * RESOLVE_CACHE_MAX);
    CHECK_INT(resolve_lookup(fx.r, "h0.gen.test", &out, got_cb, &g, &q), 1); /* now newest */
    CHECK_INT(lookup_wait(&fx, "overflow.gen.test", &g), 0);
    CHECK_INT(resolve_lookup(fx.r, "h0.gen.test", &out, got_cb, &g, &q), 1);
    CHECK_INT(resolve_lookup(fx.r, "h2.gen.test", &out, got_cb, &g, &q), 1);
    CHECK_INT(resolve_lookup(fx.r, "overflow.gen.test", &out, got_cb, &g, &q), 1);
    CHECK_STR(addr_text(&out, 0), "198.51.100.1");
    CHECK_INT(fx.dns.queries, 2 * RESOLVE_CACHE_MAX + 2);
    CHECK_INT(lookup_wait(&fx, "h1.gen.test", &g), 0); /* the oldest was evicted */
    CHECK_INT(g.status, 0);
    CHECK_INT(fx.dns.queries, 2 * RESOLVE_CACHE_MAX + 4);
    fixture_stop(&fx);
}
