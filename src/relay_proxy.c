/* relay_proxy.c: reading a session's PROXY protocol header ("proxy_protocol"), and only the
 * header: the bytes waiting are looked at with MSG_PEEK, parsed (proxy_proto.c), and exactly
 * those the header takes are read, so what the client sent after it waits in the socket for the
 * handshake as on a direct connection. The bytes of a header still incomplete are all header;
 * they are kept in up.buf until the rest comes. relay.c acts on the verdict. */
#include "autoconfig.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "metrics.h"
#include "proxy_proto.h"
#include "session.h"
#include "worker.h"

enum relay_proxy relay_proxy_read(struct session *s, struct proxy_proto_header *h)
{
    struct buf *b = pipe_buf(s, &s->up);

    if (!b)
        return RELAY_PROXY_CLOSED;
    if (buf_room(b) == 0) /* longer than a buffer (v2 allows 64 KiB): no balancer sends that */
        return RELAY_PROXY_BAD;
    ssize_t n = recv(s->client.fd, b->data + b->end, buf_room(b), MSG_PEEK);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return RELAY_PROXY_WAIT;
    if (n <= 0)
        return RELAY_PROXY_CLOSED;
    long r = proxy_proto_parse(b->data + b->start, buf_len(b) + (size_t)n, h);
    if (r < 0)
        return RELAY_PROXY_BAD;
    size_t take = r > 0 ? (size_t)r - buf_len(b) : (size_t)n;
    if (read(s->client.fd, b->data + b->end, take) != (ssize_t)take)
        return RELAY_PROXY_CLOSED;
    b->end += take;
    metrics_add(&s->w->stats->bytes_in, take);
    return r > 0 ? RELAY_PROXY_DONE : RELAY_PROXY_WAIT;
}
