/* listener.h: the accept paths of the three balance modes, worker side, and the descriptor
 * passing the dispatch mode's master uses.
 *   reuseport: the worker's own SO_REUSEPORT socket; the kernel already chose this worker.
 *   shared:    one socket for every worker; each waits on it through a private epoll instance
 *              with EPOLLEXCLUSIVE so one connection wakes one worker, not all of them.
 *   dispatch:  the master accepts and passes each connection over a unix socket (SCM_RIGHTS). */
#ifndef RP_LISTENER_H
#define RP_LISTENER_H

#include <ev.h>
#include <stdbool.h>

struct worker;
struct listener;
struct log_ratelimit;

/* Pausing an accept watcher when accept() fails for want of a resource (EMFILE, ENFILE,
 * ENOBUFS, ENOMEM): the connection stays queued and the socket stays readable, so without a
 * pause the loop would spin on it, a whole core, until a descriptor frees. Used by the workers'
 * listeners and by the dispatch mode's master alike. */
/* How long: short enough that service resumes soon after a descriptor frees, long enough
 * that a socket stuck readable costs 10 wakeups a second, not a core. */
#define LISTENER_ACCEPT_PAUSE 0.1
struct listener_backoff {
    struct ev_loop *loop;
    ev_io *io;                /* the accept watcher, stopped while paused */
    ev_timer timer;
    double pause;             /* seconds */
    struct log_ratelimit *rl; /* where the errors are counted and summarized, or NULL */
    bool stopped;             /* for good: the timer no longer restarts io */
};
void listener_backoff_init(struct listener_backoff *b, struct ev_loop *loop, ev_io *io,
                           double pause, struct log_ratelimit *rl);
/* After a failed accept with errno err: pauses io when err is a shortage of resources, and
 * returns true then; other errors are only logged (EAGAIN, EINTR, ECONNABORTED not even that). */
bool listener_backoff_on_error(struct listener_backoff *b, int err);
/* Stops io and any pending resumption, for good. */
void listener_backoff_stop(struct listener_backoff *b);

enum listener_kind { LISTENER_REUSEPORT, LISTENER_SHARED, LISTENER_DISPATCH };

/* fd: a listening TCP socket (reuseport, shared) or the worker's end of the dispatch socket.
 * The listener does not own fd. NULL on failure. */
/* port: the index in w->ports of the port fd listens on; -1 (dispatch): each connection's
 * is found from its local address. */
struct listener *listener_new(struct worker *w, int fd, enum listener_kind kind, int port);
/* Stops accepting (drain); the descriptor stays open for the master's other workers. */
void listener_stop(struct listener *l);
void listener_free(struct listener *l);
/* Its socket (not owned) and its port's index in w->ports (-1: dispatch). */
int listener_fd(const struct listener *l);
int listener_port(const struct listener *l);

/* Passes fd over the unix socket sock. Returns 0, or -1 (errno EAGAIN: the worker is busy). */
int listener_send_fd(int sock, int fd);

#endif
