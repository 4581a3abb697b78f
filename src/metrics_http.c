/* metrics_http.c: the Prometheus exposition: a tiny HTTP/1.0 server on the master's libev loop
 * answering GET /metrics with metrics_render()'s text. One request per connection, bounded in
 * size and time, never blocking; the listening socket comes from the master's socket set.
 *
 * The master's loop also supervises the workers, so this server must stay cheap whatever its
 * clients do (issue 20 item 4): idle connections cannot lock scrapers out (when the table is
 * full the oldest idle one makes room, one source first giving up its own), connections are
 * accepted at a bounded rate (a flood waits in the kernel's queue instead of taking the
 * master's core: each connection costs some 40 us of accept, answer and close), and the
 * rendered text is reused for a short while, so even the accepted ones cost no rendering each. */
#include "autoconfig.h"

#include "metrics_http.h"

#include <errno.h>
#include <ev.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include "metrics.h"
#include "netaddr.h"
#include "rp_assert.h"

#define METRICS_REQUEST_MAX 4096 /* a scrape request is a few hundred bytes */
#define METRICS_TIMEOUT 5.0      /* seconds one client may take, request and answer */
/* Connections open at once. A new one beyond this evicts the oldest connection still reading
 * its request (a scraper sends its request at once, so the oldest idle one is the least
 * likely to be one); beyond METRICS_CLIENTS_PER_SOURCE from one source, that source's own
 * oldest goes instead, so one host cannot push the others out. */
#define METRICS_CLIENTS_MAX 64
#define METRICS_CLIENTS_PER_SOURCE 16
#define METRICS_ACCEPT_BATCH 16  /* accepts per wakeup, so a flood cannot hog the loop */
#define METRICS_BACKOFF 0.5      /* pause accepting when out of descriptors */
/* How long a rendering answers scrapes. Far below any scrape interval (Prometheus: 15 s by
 * default), so a scraper never sees stale counters, yet a flood renders 5 times a second. */
#define METRICS_CACHE_TTL 0.2
/* Connections accepted per second, with bursts of up to METRICS_ACCEPT_BURST: ample for any
 * number of real scrapers (one scrape per 15 s each by default), and a flood then costs the
 * master about 1% of a core instead of most of one. */
#define METRICS_ACCEPT_RATE 256.0
#define METRICS_ACCEPT_BURST 64.0

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

struct metrics_client {
    ev_io io;
    ev_timer timer;
    struct metrics_server *s;
    TAILQ_ENTRY(metrics_client) link; /* on the server's clients, oldest first */
    uint8_t source[16];               /* netaddr_host_key() of the peer */
    char *resp;                      /* NULL while reading the request */
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
    double tokens;       /* accepts allowed now (a token bucket, METRICS_ACCEPT_RATE) */
    ev_tstamp tokens_at; /* when tokens was last refilled */
    double timeout;
    TAILQ_HEAD(, metrics_client) clients;
    int nclients;
    char *cache; /* the last rendering, NULL before the first scrape */
    size_t cache_len;
    ev_tstamp cache_at;
};

static void client_close(struct metrics_client *c)
{
    struct metrics_server *s = c->s;
    ev_io_stop(s->loop, &c->io);
    ev_timer_stop(s->loop, &c->timer);
    close(c->io.fd);
    RP_ASSERT(s->nclients > 0 && *c->link.tqe_prev == c); /* on the list, exactly once */
    TAILQ_REMOVE(&s->clients, c, link);
    s->nclients--;
    free(c->resp);
    free(c);
}

/* The Prometheus text, rendered at most once per METRICS_CACHE_TTL. NULL when out of memory. */
static const char *server_body(struct metrics_server *s, size_t *len)
{
    ev_tstamp now = ev_now(s->loop);
    if (!s->cache || now - s->cache_at >= METRICS_CACHE_TTL || now < s->cache_at) {
        size_t n;
        char *body = metrics_render_alloc(s->m, &n);
        if (!body)
            return NULL;
        free(s->cache);
        s->cache = body;
        s->cache_len = n;
        s->cache_at = now;
    }
    *len = s->cache_len;
    return s->cache;
}

static int client_prepare(struct metrics_client *c, enum metrics_request req)
{
    static const char *const status_line[] = {
        [METRICS_REQ_METRICS] = "200 OK",
        [METRICS_REQ_OTHER] = "404 Not Found",
        [METRICS_REQ_BAD] = "400 Bad Request",
    };
    const char *type = "text/plain";
    const char *body = NULL;
    size_t body_len = 0;
    char head[256];

    if (req == METRICS_REQ_METRICS) {
        body = server_body(c->s, &body_len);
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

/* Makes room for a client from source: the table is full, or source holds its share. The
 * oldest of that source's clients still reading its request goes, or else the oldest such
 * client of any source, or else (every client is being answered) the oldest of all. */
static void server_make_room(struct metrics_server *s, const uint8_t source[16])
{
    struct metrics_client *c, *own = NULL, *idle = NULL;
    int from_source = 0;
    TAILQ_FOREACH(c, &s->clients, link) {
        bool same = memcmp(c->source, source, sizeof c->source) == 0;
        from_source += same;
        if (!c->resp && same && !own)
            own = c;
        if (!c->resp && !idle)
            idle = c;
    }
    if (from_source >= METRICS_CLIENTS_PER_SOURCE && own)
        client_close(own);
    else if (s->nclients >= METRICS_CLIENTS_MAX)
        client_close(idle ? idle : TAILQ_FIRST(&s->clients));
}

static void server_add_client(struct metrics_server *s, int fd, const struct sockaddr *peer)
{
    uint8_t source[16] = {0};
    netaddr_host_key(peer, source); /* an unknown family: all such clients count as one source */
    server_make_room(s, source);
    struct metrics_client *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return;
    }
    c->s = s;
    memcpy(c->source, source, sizeof c->source);
    ev_io_init(&c->io, client_io_cb, fd, EV_READ);
    c->io.data = c;
    ev_timer_init(&c->timer, client_timeout_cb, s->timeout, 0.);
    c->timer.data = c;
    TAILQ_INSERT_TAIL(&s->clients, c, link);
    s->nclients++;
    ev_io_start(s->loop, &c->io);
    ev_timer_start(s->loop, &c->timer);
}

static void server_backoff_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct metrics_server *s = w->data;
    ev_io_start(loop, &s->accept_io);
}

static void server_pause(struct metrics_server *s, double seconds)
{
    ev_io_stop(s->loop, &s->accept_io);
    ev_timer_set(&s->backoff, seconds, 0.);
    ev_timer_start(s->loop, &s->backoff);
}

/* Takes one accept from the bucket; when it is empty, pauses accepting until a token is due
 * and returns false. */
static bool server_take_token(struct metrics_server *s)
{
    ev_tstamp now = ev_now(s->loop);
    if (now > s->tokens_at) {
        s->tokens += (now - s->tokens_at) * METRICS_ACCEPT_RATE;
        if (s->tokens > METRICS_ACCEPT_BURST)
            s->tokens = METRICS_ACCEPT_BURST;
    }
    s->tokens_at = now;
    if (s->tokens >= 1.0) {
        s->tokens -= 1.0;
        return true;
    }
    server_pause(s, (1.0 - s->tokens) / METRICS_ACCEPT_RATE);
    return false;
}

static void server_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct metrics_server *s = w->data;
    for (int i = 0; i < METRICS_ACCEPT_BATCH && server_take_token(s); i++) {
        struct sockaddr_storage peer = {0};
        socklen_t len = sizeof peer;
        int fd = accept4(s->fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
                continue;
            s->tokens += 1.0; /* nothing was accepted */
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* The pending connection stays queued and the listener stays readable: without
                 * a pause the loop would spin on it. */
                server_pause(s, METRICS_BACKOFF);
            }
            return; /* EAGAIN: drained */
        }
        server_add_client(s, fd, (struct sockaddr *)&peer);
    }
}

struct metrics_server *metrics_server_adopt(struct ev_loop *loop, int fd,
                                            const struct metrics_shared *m)
{
    if (!loop || fd < 0 || !m)
        return NULL;
    struct metrics_server *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    TAILQ_INIT(&s->clients);
    s->loop = loop;
    s->m = m;
    s->fd = fd;
    s->timeout = METRICS_TIMEOUT;
    s->tokens = METRICS_ACCEPT_BURST;
    s->tokens_at = ev_now(loop);
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
    while (!TAILQ_EMPTY(&s->clients))
        client_close(TAILQ_FIRST(&s->clients));
    RP_ASSERT(s->nclients == 0);
    ev_io_stop(s->loop, &s->accept_io);
    ev_timer_stop(s->loop, &s->backoff);
    close(s->fd);
    free(s->cache);
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
