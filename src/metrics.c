/* metrics.c: the per-worker counters and their Prometheus series. The counters live in one
 * anonymous MAP_SHARED mapping the master makes before fork, so each worker writes its own slot
 * with relaxed atomics and the master reads them all without any message passing. The master
 * renders them in the Prometheus text format 0.0.4; metrics_http.c serves that text. */
#include "autoconfig.h"

#include "metrics.h"

#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define METRICS_WORKERS_MAX 4096
#define METRICS_BODY_MAX (64u << 20) /* metrics_render_alloc gives up beyond this */

/* ---- The table: adding a counter is one line here (and its field in struct metrics_worker).
 * Names follow the Prometheus conventions: counters end in _total, gauges do not. */

enum metrics_type { METRICS_COUNTER, METRICS_GAUGE };

struct metrics_field {
    const char *name;
    enum metrics_type type;
    const char *help;
    size_t offset;
};

/* clang-format off */
#define FIELD(name, type, help, member) {name, type, help, offsetof(struct metrics_worker, member)}
/* clang-format on */
static const struct metrics_field metrics_fields[] = {
    FIELD("accepted_total", METRICS_COUNTER, "TCP connections accepted.", accepted),
    FIELD("active_connections", METRICS_GAUGE, "TCP connections open now.", active),
    FIELD("bytes_in_total", METRICS_COUNTER, "Bytes read from clients.", bytes_in),
    FIELD("bytes_out_total", METRICS_COUNTER, "Bytes written to clients.", bytes_out),
    FIELD("udp_associations", METRICS_GAUGE, "UDP associations open now.", udp_associations),
    FIELD("udp_packets_in_total", METRICS_COUNTER, "UDP datagrams received from clients.",
          udp_packets_in),
    FIELD("udp_packets_out_total", METRICS_COUNTER, "UDP datagrams sent to clients.",
          udp_packets_out),
    FIELD("udp_evicted_total", METRICS_COUNTER,
          "UDP associations evicted because the table was full.", udp_evicted),
    FIELD("failed_handshakes_total", METRICS_COUNTER,
          "TCP handshakes failed: bad tag, malformed header or refused target.", failed_handshakes),
    FIELD("replays_total", METRICS_COUNTER,
          "Salts refused as replays (also counted as failed handshakes).", replays),
    FIELD("handshake_limited_total", METRICS_COUNTER,
          "TCP connections closed at accept: their source had max_handshakes_per_source "
          "connections in the handshake.",
          handshake_limited),
    FIELD("loops_refused_total", METRICS_COUNTER,
          "Targets refused as this server's own listening address and port (a proxy loop; also "
          "counted as failed handshakes).",
          loops_refused),
    FIELD("local_refused_total", METRICS_COUNTER,
          "Requests the local port refused with an answer: malformed or oversized SOCKS or HTTP "
          "requests, wrong or missing credentials, targets its ACL blocks.",
          local_refused),
    FIELD("proxy_protocol_refused_total", METRICS_COUNTER,
          "Connections refused for their PROXY protocol header: from outside "
          "proxy_protocol_from, or malformed (also counted as failed handshakes).",
          proxy_refused),
    FIELD("shared_store_failures_total", METRICS_COUNTER,
          "First flights the shared store (Redis) could not judge in time: down, late or an "
          "error; shared_store_failure said what happened to them.",
          shared_failures),
    FIELD("udp_dropped_total", METRICS_COUNTER,
          "UDP datagrams dropped: bad tag, malformed or refused.", udp_dropped),
    FIELD("worker_restarts_total", METRICS_COUNTER,
          "Times this slot's worker was replaced after it died (reloads not counted).", restarts),
    FIELD("reloads_total", METRICS_COUNTER, "Reloads that replaced this slot's worker.", reloads),
    FIELD("fork_failures_total", METRICS_COUNTER,
          "Forks of this slot's worker that failed (each is retried with a backoff).",
          fork_failures),
    FIELD("worker_pid", METRICS_GAUGE, "Process id of the worker in this slot.", pid),
    FIELD("worker_stalls_total", METRICS_COUNTER,
          "Times this slot's worker missed its heartbeat for stall_timeout_ms and new connections "
          "were steered to the others.",
          stalls),
    FIELD("worker_stalled", METRICS_GAUGE,
          "1 while this slot's worker is stalled and steered around, else 0.", stalled),
};
#undef FIELD
#define METRICS_NFIELDS (sizeof metrics_fields / sizeof metrics_fields[0])

/* The per-user series, labelled worker, port and user. */
/* clang-format off */
#define FIELD(name, help, member) {name, METRICS_COUNTER, help, offsetof(struct metrics_user, member)}
/* clang-format on */
static const struct metrics_field metrics_user_fields[] = {
    FIELD("user_bytes_in_total", "Bytes read from this user's clients.", bytes_in),
    FIELD("user_bytes_out_total", "Bytes written to this user's clients.", bytes_out),
    FIELD("user_connections_total", "TCP connections that opened as this user.", connections),
    FIELD("user_udp_datagrams_total", "UDP datagrams received from this user's clients.",
          udp_datagrams),
    FIELD("user_failed_handshakes_total",
          "Requests that opened with this user's key and then failed (malformed, replayed or "
          "refused).",
          failed_handshakes),
};
#undef FIELD
#define METRICS_USER_NFIELDS (sizeof metrics_user_fields / sizeof metrics_user_fields[0])

#define FIELD(name, help, member) {name, METRICS_COUNTER, help, offsetof(struct metrics_port, member)}
static const struct metrics_field metrics_port_fields[] = {
    FIELD("port_bytes_in_total", "Bytes read from this port's clients.", bytes_in),
    FIELD("port_bytes_out_total", "Bytes written to this port's clients.", bytes_out),
    FIELD("port_connections_total", "TCP connections accepted on this port.", connections),
    FIELD("port_udp_datagrams_total", "UDP datagrams received on this port.", udp_datagrams),
    FIELD("port_failed_handshakes_total",
          "Failed handshakes on this port: probes, bad tags, replays, refused requests.",
          failed_handshakes),
};
#undef FIELD
#define METRICS_PORT_NFIELDS (sizeof metrics_port_fields / sizeof metrics_port_fields[0])

/* ---- Shared memory. */

#define METRICS_USERS_MAX 65536
#define METRICS_PORTS_MAX 65536

static size_t metrics_names_offset(int nworkers)
{
    return sizeof(struct metrics_shared) + (size_t)nworkers * sizeof(struct metrics_worker);
}

/* Counters follow the names, 8-byte aligned for their atomics. */
static size_t metrics_counters_offset(int nworkers, int nusers)
{
    size_t end = metrics_names_offset(nworkers) + (size_t)nusers * sizeof(struct metrics_user_name);
    return (end + 7) & ~(size_t)7;
}

static size_t metrics_port_names_offset(int nworkers, int nusers)
{
    return metrics_counters_offset(nworkers, nusers) +
           (size_t)nworkers * (size_t)nusers * sizeof(struct metrics_user);
}

/* Port numbers are 4 bytes each; the counters after them stay 8-byte aligned. */
static size_t metrics_port_counters_offset(int nworkers, int nusers, int nports)
{
    size_t names = (size_t)nports * sizeof(uint32_t);
    return metrics_port_names_offset(nworkers, nusers) + ((names + 7) & ~(size_t)7);
}

static size_t metrics_shared_size(int nworkers, int nusers, int nports)
{
    return metrics_port_counters_offset(nworkers, nusers, nports) +
           (size_t)nworkers * (size_t)nports * sizeof(struct metrics_port);
}

struct metrics_shared *metrics_new_shared(int nworkers, int nusers, int nports)
{
    if (nworkers < 1)
        nworkers = 1; /* single-process mode still has one worker: itself */
    if (nworkers > METRICS_WORKERS_MAX || nusers < 0 || nusers > METRICS_USERS_MAX ||
        nports < 0 || nports > METRICS_PORTS_MAX)
        return NULL;
    /* Anonymous shared memory is inherited across fork() and comes zero-filled; pages of user
     * slots never used are never touched, so never backed. */
    void *p = mmap(NULL, metrics_shared_size(nworkers, nusers, nports), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    struct metrics_shared *m = p;
    m->nworkers = nworkers;
    m->nusers = nusers;
    m->nports = nports;
    return m;
}

void metrics_set_upstreams(struct metrics_shared *m, const char *const *names, int n)
{
    if (n > METRICS_MAX_SERVERS)
        n = METRICS_MAX_SERVERS;
    memset(m->upstream, 0, sizeof m->upstream);
    for (int i = 0; i < n; i++)
        snprintf(m->upstream[i].name, sizeof m->upstream[i].name, "%s", names[i]);
    __atomic_store_n(&m->nupstreams, n, __ATOMIC_RELEASE);
}

void metrics_free_shared(struct metrics_shared *m)
{
    if (m)
        munmap(m, metrics_shared_size(m->nworkers, m->nusers, m->nports));
}

static struct metrics_user_name *metrics_names(const struct metrics_shared *m)
{
    return (struct metrics_user_name *)((char *)m + metrics_names_offset(m->nworkers));
}

struct metrics_user *metrics_user_counters(struct metrics_shared *m, int w)
{
    if (!m || m->nusers == 0 || w < 0 || w >= m->nworkers)
        return NULL;
    return (struct metrics_user *)((char *)m + metrics_counters_offset(m->nworkers, m->nusers)) +
           (size_t)w * (size_t)m->nusers;
}

int metrics_user_slots_top(const struct metrics_shared *m)
{
    return m ? __atomic_load_n(&m->user_top, __ATOMIC_RELAXED) : 0;
}

const char *metrics_user_name(const struct metrics_shared *m, int u)
{
    return m && u >= 0 && u < m->nusers ? metrics_names(m)[u].name : "";
}

void metrics_user_total(const struct metrics_shared *m, int u, struct metrics_user *sum)
{
    memset(sum, 0, sizeof *sum);
    if (!m || u < 0 || u >= m->nusers)
        return;
    for (int w = 0; w < m->nworkers; w++) {
        const char *c = (const char *)(metrics_user_counters((struct metrics_shared *)m, w) + u);
        for (size_t i = 0; i < METRICS_USER_NFIELDS; i++) {
            size_t at = metrics_user_fields[i].offset;
            *(uint64_t *)((char *)sum + at) += metrics_read((const uint64_t *)(c + at));
        }
    }
}

struct metrics_port *metrics_port_counters(struct metrics_shared *m, int w)
{
    if (!m || m->nports == 0 || w < 0 || w >= m->nworkers)
        return NULL;
    return (struct metrics_port *)((char *)m + metrics_port_counters_offset(m->nworkers, m->nusers,
                                                                            m->nports)) +
           (size_t)w * (size_t)m->nports;
}

static uint32_t *metrics_port_names(const struct metrics_shared *m)
{
    return (uint32_t *)((char *)m + metrics_port_names_offset(m->nworkers, m->nusers));
}

/* A user (name and port) and where it is: a slot, or an index in the caller's list. */
struct metrics_name_ref {
    const char *name;
    unsigned port;
    int at;
};

static int metrics_name_cmp(const void *a, const void *b)
{
    const struct metrics_name_ref *x = a, *y = b;
    int c = strncmp(x->name, y->name, METRICS_USER_NAME_MAX - 1);
    return c ? c : (x->port > y->port) - (x->port < y->port);
}

static const struct metrics_name_ref *metrics_name_find(const struct metrics_name_ref *refs,
                                                        size_t n, const char *name, unsigned port)
{
    struct metrics_name_ref key = {name, port, 0};
    return n ? bsearch(&key, refs, n, sizeof *refs, metrics_name_cmp) : NULL;
}

/* Sorted refs: the users of the used slots (list == NULL) or of list[0..n) on ports[]. */
static size_t metrics_name_refs(const struct metrics_shared *m, const char *const *list,
                                const unsigned *ports, int n, struct metrics_name_ref *refs)
{
    const struct metrics_user_name *names = metrics_names(m);
    size_t k = 0;

    if (list)
        for (int i = 0; i < n; i++)
            refs[k++] = (struct metrics_name_ref){list[i], ports ? ports[i] : m->port, i};
    else
        for (int u = 0; u < m->user_top; u++)
            if (names[u].name[0])
                refs[k++] = (struct metrics_name_ref){names[u].name, names[u].port, u};
    qsort(refs, k, sizeof *refs, metrics_name_cmp);
    return k;
}

static void metrics_user_zero(struct metrics_shared *m, int u)
{
    for (int w = 0; w < m->nworkers; w++)
        memset(&metrics_user_counters(m, w)[u], 0, sizeof(struct metrics_user));
}

/* Frees slot u: its name and every worker's counters. A worker still counting into it (a
 * session of a removed user draining) adds to a slot nobody renders until it is given out,
 * zeroed again. */
static void metrics_user_free(struct metrics_shared *m, int u)
{
    memset(metrics_names(m)[u].name, 0, METRICS_USER_NAME_MAX);
    metrics_user_zero(m, u);
}

/* A free user slot, the first after the last one given out, or -1; top grows as it goes. */
static int metrics_user_free_slot(struct metrics_shared *m, const struct metrics_user_name *names)
{
    for (int k = 0; k < m->nusers; k++) {
        int u = (m->user_next + k) % m->nusers;
        if (!names[u].name[0]) {
            m->user_next = (u + 1) % m->nusers;
            if (u >= m->user_top)
                __atomic_store_n(&m->user_top, u + 1, __ATOMIC_RELAXED);
            return u;
        }
    }
    return -1;
}

/* As metrics_ports_sync, for the same reason: a new user takes the free slot after the last
 * one given out (a removed user's slot, which a session of theirs may still count into until
 * its worker applied the change or drained, comes last) and starts at zero. Slots are given
 * out in order from 0, so only [0, user_top) was ever written: every scan stops there, and the
 * pages of the slots above it, most of CONFIG_MAX_USERS, are never touched, so never backed. */
void metrics_users_sync(struct metrics_shared *m, const char *const *names, const unsigned *ports,
                        int n, int *slots)
{
    int have = m ? m->user_top : 0;
    size_t cap = (size_t)(n > have ? n : have);
    struct metrics_name_ref *listed = malloc((cap + 1) * sizeof *listed);
    struct metrics_name_ref *used = malloc((cap + 1) * sizeof *used);

    for (int i = 0; i < n; i++)
        slots[i] = -1;
    if (!m || m->nusers == 0 || !listed || !used)
        goto out;
    /* names NULL with n 0 (no users left) lists nobody, not the used slots */
    size_t nlisted = n > 0 ? metrics_name_refs(m, names, ports, n, listed) : 0;
    struct metrics_user_name *slot_names = metrics_names(m);
    for (int u = 0; u < m->user_top; u++)
        if (slot_names[u].name[0] &&
            !metrics_name_find(listed, nlisted, slot_names[u].name, slot_names[u].port))
            metrics_user_free(m, u);
    size_t nused = metrics_name_refs(m, NULL, NULL, 0, used);
    for (int i = 0; i < n; i++) {
        unsigned port = ports ? ports[i] : m->port;
        const struct metrics_name_ref *r = metrics_name_find(used, nused, names[i], port);
        if (r) {
            slots[i] = r->at;
            continue;
        }
        int u = metrics_user_free_slot(m, slot_names);
        if (u < 0)
            continue; /* full (CONFIG_MAX_USERS users): this one is not counted */
        metrics_user_zero(m, u);
        snprintf(slot_names[u].name, METRICS_USER_NAME_MAX, "%s", names[i]);
        slot_names[u].port = port;
        slots[i] = u;
    }
out:
    free(listed);
    free(used);
}

static void metrics_port_zero(struct metrics_shared *m, int p)
{
    for (int w = 0; w < m->nworkers; w++)
        memset(&metrics_port_counters(m, w)[p], 0, sizeof(struct metrics_port));
}

/* A free port slot, the first after the last one given out, or -1. */
static int metrics_port_free_slot(struct metrics_shared *m, const uint32_t *numbers)
{
    for (int k = 0; k < m->nports; k++) {
        int p = (m->port_next + k) % m->nports;
        if (!numbers[p]) {
            m->port_next = (p + 1) % m->nports;
            return p;
        }
    }
    return -1;
}

/* Ports are few (CONFIG_MAX_PORTS) and synced once per start or reload: plain scans. A port
 * slot holds its number (0: free); a port no longer listed is freed and zeroed, so its series
 * disappear; a port kept keeps its slot, so its counters go on across reloads. A worker may
 * still count a removed port's last bytes into its slot until it has applied the change (or,
 * when the workers were replaced, until the old ones drained): so a new port takes the free
 * slot after the last one given out, which makes a freed slot the last to be reused (after
 * every other of the CONFIG_MAX_PORTS), and its counters are zeroed again as it is given. */
void metrics_ports_sync(struct metrics_shared *m, const uint16_t *ports, int n, int *slots)
{
    uint32_t *numbers = m && m->nports > 0 ? metrics_port_names(m) : NULL;

    for (int i = 0; i < n; i++)
        slots[i] = -1;
    if (!numbers)
        return;
    for (int p = 0; p < m->nports; p++) {
        bool listed = false;
        for (int i = 0; i < n && !listed; i++)
            listed = numbers[p] == ports[i];
        if (numbers[p] && !listed) {
            __atomic_store_n(&numbers[p], 0, __ATOMIC_RELAXED);
            metrics_port_zero(m, p);
        }
    }
    for (int i = 0; i < n; i++) {
        for (int p = 0; p < m->nports && slots[i] < 0; p++)
            if (numbers[p] == ports[i])
                slots[i] = p;
        if (slots[i] < 0 && (slots[i] = metrics_port_free_slot(m, numbers)) >= 0) {
            metrics_port_zero(m, slots[i]);
            __atomic_store_n(&numbers[slots[i]], ports[i], __ATOMIC_RELAXED);
        }
    }
}

/* ---- Rendering. */

struct metrics_out {
    char *buf;
    size_t cap, len; /* len < cap always; buf[len] == '\0' */
};

static void __attribute__((format(printf, 2, 3)))
out_printf(struct metrics_out *o, const char *fmt, ...)
{
    va_list ap;
    size_t room = o->cap - o->len;
    if (room <= 1)
        return;
    va_start(ap, fmt);
    int n = vsnprintf(o->buf + o->len, room, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    o->len += (size_t)n < room ? (size_t)n : room - 1;
}

/* A label value as the text format wants it: backslash, double quote and newline escaped. */
static void out_label(struct metrics_out *o, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            out_printf(o, "\\%c", *s);
        else if (*s == '\n')
            out_printf(o, "\\n");
        else
            out_printf(o, "%c", *s);
    }
}

/* The local roles' servers, one series each with a server="host:port" label. */
static void metrics_render_upstreams(const struct metrics_shared *m, struct metrics_out *o)
{
    static const struct {
        const char *name, *type, *help;
        size_t offset;
    } series[] = {
        {"server_up", "gauge", "1 when the server's last probe answered, else 0.",
         offsetof(struct metrics_upstream, up)},
        {"server_latency_seconds", "gauge",
         "The server's recent probe latency (TCP connect), a moving average.",
         offsetof(struct metrics_upstream, latency_us)},
        {"server_connections_total", "counter", "Connections sent to the server.",
         offsetof(struct metrics_upstream, connections)},
        {"server_connect_failures_total", "counter",
         "Connects to the server that failed and were retried on another.",
         offsetof(struct metrics_upstream, connect_failures)},
        {"server_udp_datagrams_sent_total", "counter", "UDP datagrams sent to the server.",
         offsetof(struct metrics_upstream, udp_sent)},
        {"server_udp_datagrams_received_total", "counter",
         "UDP datagrams received from the server that passed authentication.",
         offsetof(struct metrics_upstream, udp_received)},
        {"server_udp_associations_total", "counter",
         "UDP associations that started on the server, or moved to it from one that was down.",
         offsetof(struct metrics_upstream, udp_associations)},
        {"server_udp_failovers_total", "counter",
         "UDP associations that moved away from the server because it was down.",
         offsetof(struct metrics_upstream, udp_failovers)},
    };
    int n = __atomic_load_n(&m->nupstreams, __ATOMIC_ACQUIRE);

    for (size_t k = 0; n > 0 && k < sizeof series / sizeof series[0]; k++) {
        out_printf(o, "# HELP reuseproxy_%s %s\n# TYPE reuseproxy_%s %s\n", series[k].name,
                   series[k].help, series[k].name, series[k].type);
        for (int i = 0; i < n && i < METRICS_MAX_SERVERS; i++) {
            const struct metrics_upstream *u = &m->upstream[i];
            uint64_t v = metrics_read((const uint64_t *)((const char *)u + series[k].offset));
            out_printf(o, "reuseproxy_%s{server=\"", series[k].name);
            out_label(o, u->name);
            if (series[k].offset == offsetof(struct metrics_upstream, latency_us))
                out_printf(o, "\"} %.6f\n", (double)v / 1e6);
            else
                out_printf(o, "\"} %" PRIu64 "\n", v);
        }
    }
}

static void metrics_render_users(const struct metrics_shared *m, struct metrics_out *o)
{
    const struct metrics_user_name *names = metrics_names(m);

    if (m->nusers <= 0 || m->nusers > METRICS_USERS_MAX)
        return;
    for (size_t i = 0; i < METRICS_USER_NFIELDS; i++) {
        const struct metrics_field *f = &metrics_user_fields[i];
        out_printf(o, "# HELP reuseproxy_%s %s\n# TYPE reuseproxy_%s counter\n", f->name, f->help,
                   f->name);
        for (int w = 0; w < m->nworkers; w++) {
            const struct metrics_user *c = metrics_user_counters((struct metrics_shared *)m, w);
            for (int u = 0; u < metrics_user_slots_top(m); u++) {
                if (!names[u].name[0])
                    continue;
                uint64_t v = metrics_read((const uint64_t *)((const char *)&c[u] + f->offset));
                out_printf(o, "reuseproxy_%s{worker=\"%d\",port=\"%u\",user=\"", f->name, w,
                           names[u].port);
                out_label(o, names[u].name);
                out_printf(o, "\"} %" PRIu64 "\n", v);
            }
        }
    }
}

static void metrics_render_ports(const struct metrics_shared *m, struct metrics_out *o)
{
    const uint32_t *numbers = metrics_port_names(m);

    if (m->nports <= 0 || m->nports > METRICS_PORTS_MAX)
        return;
    for (size_t i = 0; i < METRICS_PORT_NFIELDS; i++) {
        const struct metrics_field *f = &metrics_port_fields[i];
        out_printf(o, "# HELP reuseproxy_%s %s\n# TYPE reuseproxy_%s counter\n", f->name, f->help,
                   f->name);
        for (int w = 0; w < m->nworkers; w++) {
            const struct metrics_port *c = metrics_port_counters((struct metrics_shared *)m, w);
            for (int p = 0; p < m->nports; p++) {
                uint32_t port = __atomic_load_n(&numbers[p], __ATOMIC_RELAXED);
                if (!port)
                    continue;
                uint64_t v = metrics_read((const uint64_t *)((const char *)&c[p] + f->offset));
                out_printf(o, "reuseproxy_%s{worker=\"%d\",port=\"%u\"} %" PRIu64 "\n", f->name,
                           w, port, v);
            }
        }
    }
}

int metrics_render(const struct metrics_shared *m, char *out, size_t cap)
{
    if (!m || !out || cap == 0 || m->nworkers < 1 || m->nworkers > METRICS_WORKERS_MAX)
        return -1;
    struct metrics_out o = {out, cap > INT_MAX ? (size_t)INT_MAX : cap, 0};
    out[0] = '\0';
    for (size_t i = 0; i < METRICS_NFIELDS; i++) {
        const struct metrics_field *f = &metrics_fields[i];
        bool gauge = f->type == METRICS_GAUGE;
        out_printf(&o, "# HELP reuseproxy_%s %s\n# TYPE reuseproxy_%s %s\n", f->name, f->help,
                   f->name, gauge ? "gauge" : "counter");
        for (int w = 0; w < m->nworkers; w++) {
            const uint64_t *p = (const uint64_t *)((const char *)&m->worker[w] + f->offset);
            uint64_t v = metrics_read(p);
            /* Gauges go up and down with separate add/sub calls; shown signed, a momentary
             * underflow reads -1 rather than 18446744073709551615. */
            if (gauge)
                out_printf(&o, "reuseproxy_%s{worker=\"%d\"} %" PRId64 "\n", f->name, w,
                           (int64_t)v);
            else
                out_printf(&o, "reuseproxy_%s{worker=\"%d\"} %" PRIu64 "\n", f->name, w, v);
        }
    }
    metrics_render_upstreams(m, &o);
    metrics_render_users(m, &o);
    metrics_render_ports(m, &o);
    return (int)o.len;
}

char *metrics_render_alloc(const struct metrics_shared *m, size_t *len)
{
    size_t ports = 0, users = 0; /* slots in use: there is room for every port and user */
    for (int p = 0; m->nports > 0 && p < m->nports; p++)
        ports += __atomic_load_n(&metrics_port_names(m)[p], __ATOMIC_RELAXED) != 0;
    for (int u = 0; u < metrics_user_slots_top(m); u++)
        users += metrics_names(m)[u].name[0] != '\0';
    size_t cap = 8192 + (size_t)m->nworkers * METRICS_NFIELDS * 80 +
                 (size_t)m->nworkers * users * METRICS_USER_NFIELDS * 120 +
                 (size_t)m->nworkers * ports * METRICS_PORT_NFIELDS * 80;
    for (; cap <= METRICS_BODY_MAX; cap *= 2) {
        char *body = malloc(cap);
        if (!body)
            return NULL;
        int n = metrics_render(m, body, cap);
        if (n >= 0 && (size_t)n < cap - 1) {
            *len = (size_t)n;
            return body;
        }
        free(body);
    }
    return NULL;
}
