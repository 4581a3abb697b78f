/* listener.h: the accept paths of the three balance modes, worker side, and the descriptor
 * passing the dispatch mode's master uses.
 *   reuseport: the worker's own SO_REUSEPORT socket; the kernel already chose this worker.
 *   shared:    one socket for every worker; each waits on it through a private epoll instance
 *              with EPOLLEXCLUSIVE so one connection wakes one worker, not all of them.
 *   dispatch:  the master accepts and passes each connection over a unix socket (SCM_RIGHTS). */
#ifndef RP_LISTENER_H
#define RP_LISTENER_H

struct worker;
struct listener;

enum listener_kind { LISTENER_REUSEPORT, LISTENER_SHARED, LISTENER_DISPATCH };

/* fd: a listening TCP socket (reuseport, shared) or the worker's end of the dispatch socket.
 * The listener does not own fd. NULL on failure. */
struct listener *listener_new(struct worker *w, int fd, enum listener_kind kind);
/* Stops accepting (drain); the descriptor stays open for the master's other workers. */
void listener_stop(struct listener *l);
void listener_free(struct listener *l);

/* Passes fd over the unix socket sock. Returns 0, or -1 (errno EAGAIN: the worker is busy). */
int listener_send_fd(int sock, int fd);

#endif
