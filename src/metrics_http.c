/* metrics_http.c: the Prometheus exposition: a tiny HTTP/1.0 server on the master's libev loop
 * answering GET /metrics with metrics_render()'s text. One request per connection, bounded in
 * size and time, never blocking; the listening socket comes from the master's socket set. */
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
#define METRICS_CLIENTS_MAX 64   /* beyond this, new connections are closed at once */
#define METRICS_ACCEPT_BATCH 16  /* accepts per wakeup, so a flood cannot hog the loop */
#define METRICS_BACKOFF 0.5      /* pause accepting when out of descriptors */

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
    LIST_ENTRY(metrics_client) link; /* on the server's clients */
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
    double timeout;
    LIST_HEAD(, metrics_client) clients;
    int nclients;
};

static void client_close(struct metrics_client *c)
{
    struct metrics_server *s = c->s;
    ev_io_stop(s->loop, &c->io);
    ev_timer_stop(s->loop, &c->timer);
    close(c->io.fd);
    RP_ASSERT(s->nclients > 0 && *c->link.le_prev == c); /* on the list, exactly once */
    LIST_REMOVE(c, link);
    s->nclients--;
    free(c->resp);
    free(c);
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
        body = metrics_render_alloc(c->s->m, &body_len);
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
    LIST_INSERT_HEAD(&s->clients, c, link);
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

struct metrics_server *metrics_server_adopt(struct ev_loop *loop, int fd,
                                            const struct metrics_shared *m)
{
    if (!loop || fd < 0 || !m)
        return NULL;
    struct metrics_server *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    LIST_INIT(&s->clients);
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
    while (!LIST_EMPTY(&s->clients))
        client_close(LIST_FIRST(&s->clients));
    RP_ASSERT(s->nclients == 0);
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
