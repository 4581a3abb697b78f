/* listener.c: accepting connections in a worker, for each balance mode (see listener.h), and
 * the SCM_RIGHTS descriptor passing of the dispatch mode. */
#include "autoconfig.h"

#include <errno.h>
#include <ev.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "listener.h"
#include "netaddr.h"
#include "relay.h"
#include "worker.h"

/* Connections accepted per readiness event before other work gets a turn. */
#define ACCEPT_BATCH 64

struct listener {
    struct worker *w;
    enum listener_kind kind;
    int fd;           /* listening socket or dispatch socket (not owned) */
    int port;         /* index in w->ports, or -1 (dispatch: from each connection) */
    int epfd;         /* shared mode: private epoll instance holding fd with EPOLLEXCLUSIVE */
    ev_io io;
    struct listener_backoff backoff;
};

/* ---- the pause after a shortage of resources ---- */

static void backoff_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct listener_backoff *b = t->data;
    (void)revents;
    if (!b->stopped)
        ev_io_start(loop, b->io);
}

void listener_backoff_init(struct listener_backoff *b, struct ev_loop *loop, ev_io *io,
                           double pause, struct log_ratelimit *rl)
{
    *b = (struct listener_backoff){.loop = loop, .io = io, .pause = pause, .rl = rl};
    ev_init(&b->timer, backoff_cb);
    b->timer.data = b;
}

bool listener_backoff_on_error(struct listener_backoff *b, int err)
{
    bool shortage = err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
    if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR || err == ECONNABORTED)
        return false;
    if (b->rl)
        log_event(b->rl, "accept: %s", strerror(err));
    if (shortage && !b->stopped) {
        ev_io_stop(b->loop, b->io);
        ev_timer_stop(b->loop, &b->timer);
        ev_timer_set(&b->timer, b->pause, 0.);
        ev_timer_start(b->loop, &b->timer);
    }
    return shortage;
}

void listener_backoff_stop(struct listener_backoff *b)
{
    b->stopped = true;
    ev_io_stop(b->loop, b->io);
    ev_timer_stop(b->loop, &b->timer);
}

/* ---- accepting in a worker ---- */

static void accept_batch(struct listener *l)
{
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage peer;
        socklen_t len = sizeof peer;
        int fd = accept4(l->fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            listener_backoff_on_error(&l->backoff, errno);
            return;
        }
        relay_accept(l->w, l->port, fd, (struct sockaddr *)&peer, len);
    }
}

/* The port a dispatched connection came in on: the one with its local port number (ports are
 * unique in a configuration, config_ports.c). -1: none (the configuration changed). */
static int dispatch_port(const struct worker *w, int fd)
{
    struct sockaddr_storage local;
    socklen_t len = sizeof local;

    if (w->nports == 1)
        return 0;
    if (getsockname(fd, (struct sockaddr *)&local, &len) < 0)
        return -1;
    return config_port_index(w->cfg, netaddr_port((struct sockaddr *)&local));
}

/* Receives up to a batch of descriptors from the master. */
static void dispatch_batch(struct listener *l)
{
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        char byte;
        int fd;
        ssize_t n = netaddr_recv_fd(l->fd, &byte, 1, &fd, NULL);
        if (n <= 0) {
            if (n == 0) /* the master went away */
                listener_stop(l);
            return;
        }
        if (fd < 0)
            continue;
        struct sockaddr_storage peer;
        socklen_t len = sizeof peer;
        int port = dispatch_port(l->w, fd);
        if (port < 0 || netaddr_set_nonblock(fd) < 0 ||
            getpeername(fd, (struct sockaddr *)&peer, &len) < 0) {
            close(fd);
            continue;
        }
        relay_accept(l->w, port, fd, (struct sockaddr *)&peer, len);
    }
}

static void io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct listener *l = io->data;
    (void)loop, (void)revents;
    switch (l->kind) {
    case LISTENER_SHARED: {
        /* Take the readiness from the private epoll set; another worker may have accepted the
         * connection already, then accept4 says EAGAIN and nothing happens. */
        struct epoll_event ev;
        if (epoll_wait(l->epfd, &ev, 1, 0) <= 0)
            return;
        accept_batch(l);
        break;
    }
    case LISTENER_REUSEPORT:
        accept_batch(l);
        break;
    case LISTENER_DISPATCH:
        dispatch_batch(l);
        break;
    }
}

struct listener *listener_new(struct worker *w, int fd, enum listener_kind kind, int port)
{
    struct listener *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->w = w;
    l->port = port;
    l->kind = kind;
    l->fd = fd;
    l->epfd = -1;
    int watch = fd;
    if (kind == LISTENER_SHARED) {
        /* libev has no EPOLLEXCLUSIVE, so the shared socket sits in a private epoll instance
         * with that flag, and libev watches the epoll descriptor itself. */
        struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE};
        l->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (l->epfd < 0 || epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            if (l->epfd >= 0)
                close(l->epfd);
            free(l);
            return NULL;
        }
        watch = l->epfd;
    }
    ev_io_init(&l->io, io_cb, watch, EV_READ);
    l->io.data = l;
    listener_backoff_init(&l->backoff, w->loop, &l->io, LISTENER_ACCEPT_PAUSE, &w->rl_accept);
    ev_io_start(w->loop, &l->io);
    return l;
}

void listener_stop(struct listener *l)
{
    listener_backoff_stop(&l->backoff);
}

int listener_fd(const struct listener *l)
{
    return l->fd;
}

int listener_port(const struct listener *l)
{
    return l->port;
}

void listener_free(struct listener *l)
{
    if (!l)
        return;
    listener_stop(l);
    if (l->epfd >= 0)
        close(l->epfd);
    free(l);
}

int listener_send_fd(int sock, int fd)
{
    char byte = 0; /* a message needs a byte of data to carry the descriptor */
    return netaddr_send_fd(sock, &byte, 1, fd);
}
