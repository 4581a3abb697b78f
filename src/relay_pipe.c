/* relay_pipe.c: the two pipes of a relay session (session.h): their buffers, the reads that
 * fill them, the protocol's seal or open in place, the writes that drain them, backpressure
 * and half-close. relay.c owns the session and acts on what relay_pipe_pump returns.
 *
 * Buffers come from the worker's pools only while bytes are in flight: a small one
 * (RELAY_BUF_CAP) to start, a bulk one (RELAY_BULK_CAP) once reads fill it, a one-chunk stall
 * buffer (RELAY_STALL_CAP) while the destination does not drain. relay_release_idle gives
 * idle ones back from a periodic timer. */
#include "autoconfig.h"

#include <errno.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <linux/sockios.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "relay.h"
#include "rp_assert.h"
#include "session.h"
#include "worker.h"

void session_io_set(struct session *s, ev_io *io, bool on)
{
    if (on && !ev_is_active(io) && io->fd >= 0)
        ev_io_start(s->w->loop, io);
    else if (!on && ev_is_active(io))
        ev_io_stop(s->w->loop, io);
}

/* The pool a buffer of this capacity belongs to. */
/* Bytes written to the client: the worker's, the user's and the port's counters. */
static void session_count_out(struct session *s, uint64_t n)
{
    metrics_add(&s->w->stats->bytes_out, n);
    if (s->ustats)
        metrics_add(&s->ustats->bytes_out, n);
    if (s->pstats)
        metrics_add(&s->pstats->bytes_out, n);
}

static struct buf_pool *pool_of(struct worker *w, size_t cap)
{
    if (cap == RELAY_BULK_CAP)
        return &w->bulk_pool;
    return cap == RELAY_STALL_CAP ? &w->stall_pool : &w->pool;
}

/* Gives the pipe's buffer back to the pool it came from. */
void pipe_buf_put(struct session *s, struct pipe *p)
{
    if (p->buf)
        buf_put(pool_of(s->w, p->buf->cap), p->buf);
    p->buf = NULL;
}

/* Moves what the pipe holds (payloads not yet written, wire bytes not yet opened) into an
 * empty buffer from the other pool, its iov following. Returns 0, or -1 when it does not fit,
 * a payload lies outside the buffer, or no buffer is to be had: the pipe keeps its own. */
static int pipe_rebuffer(struct session *s, struct pipe *p, size_t cap)
{
    struct buf *b = p->buf, *nb;
    struct buf_pool *to = pool_of(s->w, cap);
    uint8_t *lo = b->data + b->start, *end = b->data + b->end;

    for (int i = p->iov_i; i < p->iov_n; i++) {
        uint8_t *base = p->iov[i].iov_base;
        if (base < b->data || base + p->iov[i].iov_len > end)
            return -1;
        if (base < lo)
            lo = base;
    }
    size_t n = (size_t)(end - lo);
    if (n > to->buf_cap || !(nb = buf_get(to)))
        return -1;
    if (n)
        memcpy(nb->data, lo, n);
    for (int i = p->iov_i; i < p->iov_n; i++)
        p->iov[i].iov_base = nb->data + ((uint8_t *)p->iov[i].iov_base - lo);
    nb->start = (size_t)(b->data + b->start - lo);
    nb->end = n;
    pipe_buf_put(s, p);
    p->buf = nb;
    return 0;
}

/* The pipe's buffer to read into, taken from the pool when it has none, of the size its mode
 * wants: a pipe that turned bulk moves what it holds into a large buffer, one that fell back or
 * waited in a stall buffer moves into a small one (without one of that size, it carries on
 * with its own; a stall buffer always has room for a chunk). */
struct buf *pipe_buf(struct session *s, struct pipe *p)
{
    size_t want = p->bulk ? RELAY_BULK_CAP : RELAY_BUF_CAP;

    if (!p->buf)
        p->buf = buf_get(pool_of(s->w, want));
    else if (p->buf->cap != want)
        pipe_rebuffer(s, p, want);
    return p->buf;
}

/* How many bytes a read for a bulk or stalled pipe may take: what the destination's kernel
 * will accept now. A read larger than that leaves the rest in user space, where a client that
 * stops reading pins it for as long as it stays (issue 13 item 4: 1 MiB per stalled download).
 * SO_SNDBUF is the kernel's budget for the socket's send queue, counted with its bookkeeping
 * (a few percent of a large segment); what is queued (SIOCOUTQ, tcp(7)) is payload. The budget
 * less a sixteenth for that bookkeeping, less what is queued, is room the kernel takes at once.
 * (Half the budget, tried first, cost 12% more CPU per byte on loopback: reads shrink to a
 * chunk whenever a slower reader keeps the queue half full.) SIZE_MAX when the socket will not
 * say. */
static size_t dst_room(int fd)
{
    int sndbuf = 0, queued = 0;
    socklen_t len = sizeof sndbuf;

    if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &len) < 0 ||
        ioctl(fd, SIOCOUTQ, &queued) < 0 || sndbuf <= 0 || queued < 0)
        return SIZE_MAX;
    size_t budget = (size_t)sndbuf - (size_t)sndbuf / 16;
    return (size_t)queued >= budget ? 0 : budget - (size_t)queued;
}

/* Gives the buffer back when it holds nothing: no payload to write, no wire byte to open. */
static void pipe_buf_put_if_empty(struct session *s, struct pipe *p)
{
    if (p->buf && p->buf->start == p->buf->end && p->iov_i == p->iov_n)
        pipe_buf_put(s, p);
}

void pipe_release(struct session *s, struct pipe *p)
{
    pipe_buf_put(s, p);
    proto_dir_free(&p->pd);
}

/* Bytes given back to malloc after which glibc is asked to return free pages to the system. */
#define RELAY_TRIM_BYTES (4u << 20)

void relay_release_idle(struct worker *w)
{
    struct buf_pool *pools[] = {&w->pool, &w->bulk_pool, &w->stall_pool};

    for (size_t i = 0; i < sizeof pools / sizeof pools[0]; i++) {
        buf_pool_trim(pools[i]);
        w->released += buf_pool_take_released(pools[i]);
    }
    if (w->released < RELAY_TRIM_BYTES && !(w->released && w->nsessions == 0))
        return;
    w->released = 0;
#if defined(__GLIBC__)
    /* free() keeps a burst's memory in the heap (glibc's brk heap, and large blocks there once
     * its mmap threshold has grown); malloc_trim gives the free pages back (issue 13 item 4:
     * RSS within 2x of idle once a burst of stalled connections is gone). */
    malloc_trim(0);
#endif
}

/* Writes what the pipe holds. Returns 1 when all is written, 0 when dst would block, -1. */
static int pipe_flush(struct session *s, struct pipe *p, struct side *dst)
{
    bool to_client = p == &s->down;
    ssize_t n;

    if (p->seal || p->plain) {
        struct buf *b = p->buf;
        while (b && b->start < b->end) {
            n = write(dst->fd, b->data + b->start, b->end - b->start);
            if (n < 0)
                return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
            b->start += n;
            if (to_client)
                session_count_out(s, (uint64_t)n);
        }
        if (b)
            b->start = b->end = 0;
        return 1;
    }
    while (p->iov_i < p->iov_n) {
        n = writev(dst->fd, p->iov + p->iov_i, p->iov_n - p->iov_i);
        if (n < 0)
            return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
        if (to_client)
            session_count_out(s, (uint64_t)n);
        while (n > 0) {
            struct iovec *v = &p->iov[p->iov_i];
            size_t k = (size_t)n < v->iov_len ? (size_t)n : v->iov_len;
            v->iov_base = (uint8_t *)v->iov_base + k;
            v->iov_len -= k;
            n -= k;
            if (v->iov_len == 0)
                p->iov_i++;
        }
    }
    p->iov_n = p->iov_i = 0;
    return 1;
}

/* Opens the complete chunks held in the buffer into iov[]. Returns the number of payloads
 * ready, or -1 when the stream fails authentication. */
static int pipe_open_chunks(struct session *s, struct pipe *p)
{
    struct buf *b = p->buf;
    size_t used;

    p->iov_n = p->iov_i = 0;
    if (!b)
        return 0;
    int n = s->conn.ctx->ops->open_stream(&s->conn, &p->pd, b->data + b->start, buf_len(b), &used,
                                          p->iov, PIPE_IOV);
    if (n < 0 && s->conn.reason) {
        /* A client's view of a bad response head (SIP022: wrong echoed salt, stale
         * timestamp): counted as a failed handshake; nothing of it is relayed. */
        metrics_add(&s->w->stats->failed_handshakes, 1);
        log_event(&s->w->rl_handshake, "%s in the server's response", s->conn.reason);
        s->conn.reason = NULL;
    }
    if (n < 0)
        return -1;
    RP_ASSERT(n <= PIPE_IOV && used <= buf_len(b));
    b->start += used;
    p->iov_n = n;
    return n;
}

/* Reads once from src into the pipe, at most max bytes (or one chunk's payload), and
 * transforms what came in. A read that takes all it was offered makes the pipe bulk. Returns
 * bytes read (> 0), 0 at EOF, -1 when src would block, -2 on error. */
static ssize_t pipe_fill(struct session *s, struct pipe *p, struct side *src, size_t max)
{
    struct buf *b = pipe_buf(s, p);
    ssize_t n;

    if (!b)
        return -2;
    if (p->plain) {
        /* b is empty here, as below: read from its start */
        size_t want = b->cap < max ? b->cap : max;
        n = read(src->fd, b->data, want);
        if (n <= 0)
            return n == 0 ? 0 : (errno == EAGAIN || errno == EINTR) ? -1 : -2;
        if ((size_t)n == want)
            p->bulk = true;
        b->start = 0;
        b->end = (size_t)n;
    } else if (p->seal) {
        /* b is empty here: pipe_pump reads only after everything was flushed. */
        const struct proto_ops *ops = s->conn.ctx->ops;
        size_t base = ops->seal_head_len(&s->conn, &p->pd);
        struct iovec iov[RELAY_BULK_CHUNKS];
        int slots = 0;
        for (size_t at = base; at + PROTO_SLOT <= b->cap && slots < RELAY_BULK_CHUNKS &&
                               (slots == 0 || (size_t)slots * PROTO_SLOT_PAYLOAD < max);
             at += PROTO_SLOT)
            iov[slots++] = (struct iovec){b->data + at + PROTO_SLOT_HEAD, PROTO_SLOT_PAYLOAD};
        n = readv(src->fd, iov, slots);
        if (n <= 0)
            return n == 0 ? 0 : (errno == EAGAIN || errno == EINTR) ? -1 : -2;
        if ((size_t)n == (size_t)slots * PROTO_SLOT_PAYLOAD)
            p->bulk = true;
        size_t start;
        long end = ops->seal_slots(&s->conn, &p->pd, b->data, (size_t)n, &start);
        if (end < 0)
            return -2;
        RP_ASSERT((size_t)end <= b->cap && start <= (size_t)end);
        b->start = start;
        b->end = (size_t)end;
    } else {
        if (b->start == b->end)
            b->start = b->end = 0;
        else if (buf_room(b) < PROTO_CHUNK_WIRE_MAX)
            buf_compact(b);
        size_t room = buf_room(b) < max ? buf_room(b) : max;
        n = read(src->fd, b->data + b->end, room);
        if (n <= 0)
            return n == 0 ? 0 : (errno == EAGAIN || errno == EINTR) ? -1 : -2;
        if ((size_t)n == room)
            p->bulk = true;
        b->end += n;
        if (pipe_open_chunks(s, p) < 0)
            return -2;
    }
    if (p == &s->up) {
        metrics_add(&s->w->stats->bytes_in, n);
        if (s->ustats)
            metrics_add(&s->ustats->bytes_in, (uint64_t)n);
        if (s->pstats)
            metrics_add(&s->pstats->bytes_in, (uint64_t)n);
    }
    s->last_activity = ev_now(s->w->loop);
    return n;
}

/* dst would block: wait for it and stop reading src. A destination that does not drain needs
 * no bulk buffer: the kernel's socket buffers hold what is in flight. What is left moves to a
 * stall buffer (or a small one) when it fits, and the larger one goes back to the pool (issue
 * 13 item 4); reads stay cut to the destination's room until it drains again. */
static void pipe_blocked(struct session *s, struct pipe *p, struct side *src, struct side *dst)
{
    p->bulk = false;
    p->stalled = true;
    if (p->buf && p->buf->cap != RELAY_STALL_CAP && pipe_rebuffer(s, p, RELAY_STALL_CAP) < 0 &&
        p->buf->cap == RELAY_BULK_CAP)
        pipe_rebuffer(s, p, RELAY_BUF_CAP);
    session_io_set(s, &dst->wio, true);
    session_io_set(s, &src->rio, false);
}

/* How much the next read may take. A bulk or stalled pipe reads no more than the destination
 * accepts now (at least a chunk's payload); less room than a small buffer ends bulk mode,
 * more ends the stall. */
static size_t pipe_read_max(struct pipe *p, struct side *dst)
{
    if (!p->bulk && !p->stalled)
        return SIZE_MAX;
    size_t room = dst_room(dst->fd);
    p->stalled = p->stalled && room < RELAY_BUF_CAP;
    p->bulk = p->bulk && room >= RELAY_BUF_CAP;
    return room < PROTO_SLOT_PAYLOAD ? PROTO_SLOT_PAYLOAD : room;
}

/* The source ended and everything before it was written: pass the end on. */
static enum relay_pump pipe_ended(struct session *s, struct pipe *p, struct side *src,
                                  struct side *dst)
{
    if (p->buf && p->buf->start == p->buf->end)
        pipe_buf_put(s, p);
    session_io_set(s, &src->rio, false);
    if (p->shut)
        return RELAY_PUMP_WAIT;
    p->shut = true;
    /* When the other direction has ended too, close() sends this FIN as well: one system call
     * fewer for every connection. */
    if ((p == &s->up ? &s->down : &s->up)->shut)
        return RELAY_PUMP_DONE;
    shutdown(dst->fd, SHUT_WR);
    return RELAY_PUMP_WAIT;
}

enum relay_pump relay_pipe_pump(struct session *s, struct pipe *p, struct side *src,
                                struct side *dst, const char **why)
{
    for (int round = 0;; round++) {
        int r = pipe_flush(s, p, dst);
        if (r < 0)
            return *why = "write failed", RELAY_PUMP_ABORT;
        if (r == 0) {
            pipe_blocked(s, p, src, dst);
            return RELAY_PUMP_WAIT;
        }
        session_io_set(s, &dst->wio, false);
        /* an opening pipe may hold more complete chunks than one iov batch */
        if (!p->seal && !p->plain && p->buf && p->buf->start < p->buf->end) {
            int k = pipe_open_chunks(s, p);
            if (k < 0)
                return *why = "a chunk failed to open", RELAY_PUMP_ABORT;
            if (k > 0)
                continue;
            if (p->eof) /* the stream ended inside a chunk: truncated, not complete */
                return *why = "the stream ended inside a chunk", RELAY_PUMP_ABORT;
        }
        if (p->eof)
            return pipe_ended(s, p, src, dst);
        if (round == PIPE_ROUNDS) {
            /* Everything read so far is written; yield to other connections. The source is
             * level-triggered, so its remaining bytes bring us back; if none come, an empty
             * buffer must not stay pinned until they do. */
            pipe_buf_put_if_empty(s, p);
            session_io_set(s, &src->rio, true);
            return RELAY_PUMP_WAIT;
        }
        if (p->drained) {
            /* The handshake's read took less than it offered: the socket held nothing more, and
             * a read now would only say EAGAIN (one system call per connection: the one after
             * a request's first flight). The level-triggered watcher says when more comes. */
            p->drained = false;
            pipe_buf_put_if_empty(s, p);
            session_io_set(s, &src->rio, true);
            return RELAY_PUMP_WAIT;
        }
        ssize_t n = pipe_fill(s, p, src, pipe_read_max(p, dst));
        if (n == -1) {
            pipe_buf_put_if_empty(s, p); /* nothing to read */
            session_io_set(s, &src->rio, true);
            return RELAY_PUMP_WAIT;
        }
        if (n == -2)
            return *why = "read failed or a chunk failed to open", RELAY_PUMP_ABORT;
        if (n == 0)
            p->eof = true;
    }
}
