/* metrics.c: the per-worker counters and their Prometheus exposition. The counters live in one
 * anonymous MAP_SHARED mapping the master makes before fork, so each worker writes its own slot
 * with relaxed atomics and the master reads them all without any message passing. The master
 * renders them in the Prometheus text format 0.0.4 and serves them from a tiny HTTP/1.0 server
 * on its libev loop: one request per connection, bounded in size and time, never blocking. */
#include "autoconfig.h"

#include "metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "netaddr.h"

#define METRICS_WORKERS_MAX 4096
#define METRICS_REQUEST_MAX 4096 /* a scrape request is a few hundred bytes */
#define METRICS_TIMEOUT 5.0      /* seconds one client may take, request and answer */
#define METRICS_CLIENTS_MAX 64   /* beyond this, new connections are closed at once */
#define METRICS_ACCEPT_BATCH 16  /* accepts per wakeup, so a flood cannot hog the loop */
#define METRICS_BACKOFF 0.5      /* pause accepting when out of descriptors */
#define METRICS_BACKLOG 64       /* scrapers are few; a short queue is plenty */
#define METRICS_BODY_MAX (64u << 20)

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
    FIELD("udp_dropped_total", METRICS_COUNTER,
          "UDP datagrams dropped: bad tag, malformed or refused.", udp_dropped),
    FIELD("worker_restarts_total", METRICS_COUNTER, "Times this worker slot was restarted.",
          restarts),
    FIELD("worker_pid", METRICS_GAUGE, "Process id of the worker in this slot.", pid),
};
#undef FIELD
#define METRICS_NFIELDS (sizeof metrics_fields / sizeof metrics_fields[0])

/* ---- Shared memory. */

static size_t metrics_shared_size(int nworkers)
{
    return sizeof(struct metrics_shared) + (size_t)nworkers * sizeof(struct metrics_worker);
}

struct metrics_shared *metrics_new_shared(int nworkers)
{
    if (nworkers < 1)
        nworkers = 1; /* single-process mode still has one worker: itself */
    if (nworkers > METRICS_WORKERS_MAX)
        return NULL;
    /* Anonymous shared memory is inherited across fork() and comes zero-filled. */
    void *p = mmap(NULL, metrics_shared_size(nworkers), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    struct metrics_shared *m = p;
    m->nworkers = nworkers;
    return m;
}

void metrics_free_shared(struct metrics_shared *m)
{
    if (m)
        munmap(m, metrics_shared_size(m->nworkers));
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
    return (int)o.len;
}

/* ---- The HTTP side. The request is parsed by a pure function; the rest is socket plumbing. */

enum metrics_request {
    METRICS_REQ_INCOMPLETE,
    METRICS_REQ_BAD,
    METRICS_REQ_METRICS,
    METRICS_REQ_OTHER
};

/* Looks at the bytes received so far. The request is complete at the blank line ending the
 * header block (RFC 1945 section 4.1; a bare LF is tolerated as appendix B advises). Only the
 * request line (section 5.1) matters: "GET /metrics HTTP/1.x", a query string ignored. */
static enum metrics_request metrics_parse_request(const char *buf, size_t len)
{
    const char *end = NULL;
    for (size_t i = 0; i + 1 < len && !end; i++)
        if (buf[i] == '\n' &&
            (buf[i + 1] == '\n' || (buf[i + 1] == '\r' && i + 2 < len && buf[i + 2] == '\n')))
            end = buf + i;
    if (!end)
        return METRICS_REQ_INCOMPLETE;
    const char *eol = memchr(buf, '\n', (size_t)(end - buf) + 1);
    size_t line = (size_t)(eol - buf);
    if (line > 0 && buf[line - 1] == '\r')
        line--;
    const char *sp1 = memchr(buf, ' ', line);
    if (!sp1 || sp1 == buf)
        return METRICS_REQ_BAD;
    const char *target = sp1 + 1;
    const char *sp2 = memchr(target, ' ', line - (size_t)(target - buf));
    if (!sp2 || sp2 == target || line - (size_t)(sp2 + 1 - buf) < 5 ||
        memcmp(sp2 + 1, "HTTP/", 5) != 0)
        return METRICS_REQ_BAD;
    size_t tlen = (size_t)(sp2 - target);
    bool get = (size_t)(sp1 - buf) == 3 && memcmp(buf, "GET", 3) == 0;
    bool path = tlen >= 8 && memcmp(target, "/metrics", 8) == 0 && (tlen == 8 || target[8] == '?');
    return get && path ? METRICS_REQ_METRICS : METRICS_REQ_OTHER;
}

/* "a.b.c.d:port" or "[v6]:port", numeric only (the master must not block on DNS), read by
 * netaddr's one parser. Port 0 lets the kernel choose. */
static int metrics_parse_address(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
    struct netaddr_endpoint e;
    if (netaddr_parse_hostport(s, strlen(s), NETADDR_NUMERIC | NETADDR_PORT_ZERO, &e) != 0)
        return -1;
    memcpy(ss, &e.target.addr, sizeof *ss);
    *len = e.target.addrlen;
    return 0;
}

struct metrics_client {
    ev_io io;
    ev_timer timer;
    struct metrics_server *s;
    struct metrics_client *prev, *next;
    char *resp; /* NULL while reading the request */
    size_t resp_len, resp_off;
    size_t req_len;
    char req[METRICS_REQUEST_MAX + 1];
};

struct metrics_server {
    struct ev_loop *loop;
    const struct metrics_shared *m;
    int fd;
    ev_io accept_io;
    ev_timer backoff;
    double timeout;
    struct metrics_client *clients;
    int nclients;
};

static void client_close(struct metrics_client *c)
{
    struct metrics_server *s = c->s;
    ev_io_stop(s->loop, &c->io);
    ev_timer_stop(s->loop, &c->timer);
    close(c->io.fd);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nclients--;
    free(c->resp);
    free(c);
}

/* Renders the body, growing the buffer until it fits. Returns it (malloc'd) or NULL. */
static char *render_body(const struct metrics_shared *m, size_t *len)
{
    size_t cap = 4096 + (size_t)m->nworkers * METRICS_NFIELDS * 80;
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

static int client_prepare(struct metrics_client *c, enum metrics_request req)
{
    static const char *const status_line[] = {
        [METRICS_REQ_METRICS] = "200 OK",
        [METRICS_REQ_OTHER] = "404 Not Found",
        [METRICS_REQ_BAD] = "400 Bad Request",
    };
    const char *type = "text/plain";
    char *body = NULL;
    size_t body_len = 0;
    char head[256];

    if (req == METRICS_REQ_METRICS) {
        body = render_body(c->s->m, &body_len);
        if (!body)
            return -1;
        type = "text/plain; version=0.0.4";
    }
    const char *text = req == METRICS_REQ_METRICS ? body
                       : req == METRICS_REQ_OTHER ? "not found\n"
                                                  : "bad request\n";
    if (!body)
        body_len = strlen(text);
    int hlen = snprintf(head, sizeof head,
                        "HTTP/1.0 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                        "Connection: close\r\n\r\n",
                        status_line[req], type, body_len);
    c->resp = malloc((size_t)hlen + body_len);
    if (c->resp) {
        memcpy(c->resp, head, (size_t)hlen);
        memcpy(c->resp + hlen, text, body_len);
        c->resp_len = (size_t)hlen + body_len;
    }
    free(body);
    return c->resp ? 0 : -1;
}

/* Sends what the socket takes now; the rest waits for EV_WRITE. */
static void client_write(struct metrics_client *c)
{
    while (c->resp_off < c->resp_len) {
        ssize_t n = send(c->io.fd, c->resp + c->resp_off, c->resp_len - c->resp_off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0)
            break;
        c->resp_off += (size_t)n;
    }
    client_close(c); /* done, or the peer is gone */
}

static void client_read(struct metrics_client *c)
{
    ssize_t n = recv(c->io.fd, c->req + c->req_len, METRICS_REQUEST_MAX - c->req_len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) { /* error, or hung up before finishing the request */
        client_close(c);
        return;
    }
    c->req_len += (size_t)n;
    c->req[c->req_len] = '\0';
    enum metrics_request req = metrics_parse_request(c->req, c->req_len);
    if (req == METRICS_REQ_INCOMPLETE) {
        if (c->req_len == METRICS_REQUEST_MAX)
            client_close(c); /* too long to be a scrape */
        return;
    }
    if (client_prepare(c, req) < 0) {
        client_close(c);
        return;
    }
    ev_io_stop(c->s->loop, &c->io);
    ev_io_set(&c->io, c->io.fd, EV_WRITE);
    ev_io_start(c->s->loop, &c->io);
    client_write(c);
}

static void client_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct metrics_client *c = w->data;
    if (c->resp)
        client_write(c);
    else
        client_read(c);
}

static void client_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    client_close(w->data);
}

static void server_add_client(struct metrics_server *s, int fd)
{
    struct metrics_client *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return;
    }
    c->s = s;
    ev_io_init(&c->io, client_io_cb, fd, EV_READ);
    c->io.data = c;
    ev_timer_init(&c->timer, client_timeout_cb, s->timeout, 0.);
    c->timer.data = c;
    c->next = s->clients;
    if (s->clients)
        s->clients->prev = c;
    s->clients = c;
    s->nclients++;
    ev_io_start(s->loop, &c->io);
    ev_timer_start(s->loop, &c->timer);
}

static void server_backoff_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct metrics_server *s = w->data;
    ev_io_start(loop, &s->accept_io);
}

static void server_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct metrics_server *s = w->data;
    for (int i = 0; i < METRICS_ACCEPT_BATCH; i++) {
        int fd = accept4(s->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* The pending connection stays queued and the listener stays readable: without
                 * a pause the loop would spin on it. */
                ev_io_stop(loop, &s->accept_io);
                ev_timer_set(&s->backoff, METRICS_BACKOFF, 0.);
                ev_timer_start(loop, &s->backoff);
            }
            return; /* EAGAIN: drained */
        }
        if (s->nclients >= METRICS_CLIENTS_MAX)
            close(fd);
        else
            server_add_client(s, fd);
    }
}

static void __attribute__((format(printf, 3, 4)))
set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (!err || !errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

struct metrics_server *metrics_server_start(struct ev_loop *loop, const char *address,
                                            const struct metrics_shared *m, char *err,
                                            size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t len;

    if (!loop || !m || !address || metrics_parse_address(address, &ss, &len) < 0) {
        set_err(err, errlen, "metrics: invalid address \"%s\" (expected ip:port or [ipv6]:port)",
                address ? address : "");
        return NULL;
    }
    /* netaddr sets SO_REUSEADDR, so a restarted master can bind again while old connections
     * sit in TIME_WAIT. */
    int fd = netaddr_listen_tcp((struct sockaddr *)&ss, len, METRICS_BACKLOG, 0);
    if (fd < 0) {
        set_err(err, errlen, "metrics: cannot listen on %s: %s", address, strerror(errno));
        return NULL;
    }
    struct metrics_server *s = metrics_server_adopt(loop, fd, m);
    if (!s) {
        set_err(err, errlen, "metrics: out of memory");
        close(fd);
    }
    return s;
}

struct metrics_server *metrics_server_adopt(struct ev_loop *loop, int fd,
                                            const struct metrics_shared *m)
{
    struct metrics_server *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->loop = loop;
    s->m = m;
    s->fd = fd;
    s->timeout = METRICS_TIMEOUT;
    ev_io_init(&s->accept_io, server_accept_cb, fd, EV_READ);
    s->accept_io.data = s;
    ev_timer_init(&s->backoff, server_backoff_cb, METRICS_BACKOFF, 0.);
    s->backoff.data = s;
    ev_io_start(loop, &s->accept_io);
    return s;
}

void metrics_server_stop(struct metrics_server *s)
{
    if (!s)
        return;
    for (struct metrics_client *c = s->clients, *next; c; c = next) {
        next = c->next;
        client_close(c);
    }
    ev_io_stop(s->loop, &s->accept_io);
    ev_timer_stop(s->loop, &s->backoff);
    close(s->fd);
    free(s);
}

int metrics_server_port(const struct metrics_server *s)
{
    struct sockaddr_storage ss = {0};
    socklen_t len = sizeof ss;
    if (!s || getsockname(s->fd, (struct sockaddr *)&ss, &len) < 0 ||
        (ss.ss_family != AF_INET && ss.ss_family != AF_INET6))
        return -1;
    return netaddr_port((struct sockaddr *)&ss);
}

void metrics_server_set_timeout(struct metrics_server *s, double seconds)
{
    if (s && seconds > 0)
        s->timeout = seconds;
}
