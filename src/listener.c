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
/* After EMFILE/ENFILE, accepting pauses this long instead of spinning on a socket that stays
 * readable while no descriptor is free. */
#define ACCEPT_PAUSE 0.1

struct listener {
    struct worker *w;
    enum listener_kind kind;
    int fd;           /* listening socket or dispatch socket (not owned) */
    int epfd;         /* shared mode: private epoll instance holding fd with EPOLLEXCLUSIVE */
    ev_io io;
    ev_timer pause;
    bool stopped;
};

static void listener_pause(struct listener *l, int err)
{
    log_event(&l->w->rl_accept, "accept: %s", strerror(err));
    ev_io_stop(l->w->loop, &l->io);
    ev_timer_set(&l->pause, ACCEPT_PAUSE, 0.);
    ev_timer_start(l->w->loop, &l->pause);
}

static void pause_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct listener *l = t->data;
    (void)revents;
    if (!l->stopped)
        ev_io_start(loop, &l->io);
}

static void accept_batch(struct listener *l)
{
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage peer;
        socklen_t len = sizeof peer;
        int fd = accept4(l->fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                listener_pause(l, errno);
            else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                log_event(&l->w->rl_accept, "accept: %s", strerror(errno));
            return;
        }
        relay_accept(l->w, fd, (struct sockaddr *)&peer, len);
    }
}

/* Receives up to a batch of descriptors from the master. */
static void dispatch_batch(struct listener *l)
{
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        char byte;
        struct iovec iov = {&byte, 1};
        union {
            struct cmsghdr h;
            char space[CMSG_SPACE(sizeof(int))];
        } ctl;
        struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl,
                             .msg_controllen = sizeof ctl};
        ssize_t n = recvmsg(l->fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        if (n <= 0) {
            if (n == 0) /* the master went away */
                listener_stop(l);
            return;
        }
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        int fd;
        memcpy(&fd, CMSG_DATA(c), sizeof fd);
        struct sockaddr_storage peer;
        socklen_t len = sizeof peer;
        if (netaddr_set_nonblock(fd) < 0 || getpeername(fd, (struct sockaddr *)&peer, &len) < 0) {
            close(fd);
            continue;
        }
        relay_accept(l->w, fd, (struct sockaddr *)&peer, len);
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

struct listener *listener_new(struct worker *w, int fd, enum listener_kind kind)
{
    struct listener *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->w = w;
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
    ev_init(&l->pause, pause_cb);
    l->pause.data = l;
    ev_io_start(w->loop, &l->io);
    return l;
}

void listener_stop(struct listener *l)
{
    l->stopped = true;
    ev_io_stop(l->w->loop, &l->io);
    ev_timer_stop(l->w->loop, &l->pause);
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
    char byte = 0;
    struct iovec iov = {&byte, 1};
    union {
        struct cmsghdr h;
        char space[CMSG_SPACE(sizeof(int))];
    } ctl;
    memset(&ctl, 0, sizeof ctl);
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl,
                         .msg_controllen = sizeof ctl};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
    return sendmsg(sock, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) == 1 ? 0 : -1;
}
