/* handshake.c: how each role learns its target before the relay starts.
 *   server: the client's salt and first chunk (SIP004): the address header, then early data;
 *   local:  SOCKS5 (RFC 1928): method selection, then CONNECT or UDP ASSOCIATE;
 *   tunnel: nothing to read: the target is tunnel_address from the config.
 * The server side treats every failure before authentication succeeds the same way (see
 * session_probe in relay.c). */
#include "autoconfig.h"

#include <string.h>
#include <unistd.h>

#include "replay.h"
#include "session.h"
#include "socks5.h"
#include "udp_relay.h"
#include "worker.h"

/* SOCKS5 requests are small; early data beyond this waits for the relay. */
#define SOCKS5_READ_MAX 4096

static void start_local_connect(struct session *s, const uint8_t *header, size_t header_len)
{
    memcpy(s->header, header, header_len);
    s->header_len = header_len;
    s->target = s->w->server;
    /* until connected, the client is not read: its bytes wait in the kernel */
    ev_io_stop(s->w->loop, &s->client.rio);
    session_connect_target(s);
}

void handshake_start(struct session *s)
{
    struct worker *w = s->w;

    if (w->cfg->role == ROLE_TUNNEL) {
        uint8_t header[NETADDR_HEADER_MAX];
        int n = netaddr_write_header(&w->tunnel, header, sizeof header);
        if (n < 0) {
            session_close(s);
            return;
        }
        s->stage = STAGE_HANDSHAKE;
        start_local_connect(s, header, n);
        return;
    }
    session_set_stage(s, STAGE_HANDSHAKE);
    ev_io_start(w->loop, &s->client.rio);
}

/* ---- server: salt + first chunk ---- */

static void server_on_read(struct session *s)
{
    struct worker *w = s->w;
    struct pipe *p = &s->up;
    size_t salt_len = crypto_method_info(w->key.method)->salt_len;

    ssize_t n = session_read_client(s, SIZE_MAX);
    if (n == -1)
        return;
    if (n <= 0) { /* the client left (or broke) before finishing: close, as for any probe */
        session_close(s);
        return;
    }
    struct buf *b = p->buf;
    if (!p->keyed) {
        if (buf_len(b) < salt_len)
            return;
        if (ss_stream_init(&p->ss, &w->key, b->data) < 0) {
            session_close(s);
            return;
        }
        p->keyed = true;
        b->start = salt_len;
    }
    size_t used, plen;
    uint8_t *payload;
    int r = ss_stream_open_chunk(&p->ss, b->data + b->start, b->end - b->start, &used, &payload,
                                 &plen);
    if (r == SS_OPEN_NEED_MORE) {
        if (buf_room(b) == 0)
            session_probe(s, "oversized first chunk");
        return;
    }
    if (r == SS_OPEN_ERROR) {
        session_probe(s, "bad tag");
        return;
    }
    int hlen = netaddr_parse_header(payload, plen, &s->target);
    if (hlen <= 0) {
        session_probe(s, "malformed address header");
        return;
    }
    /* Only a salt that authenticated is remembered: random junk cannot fill the store. The salt
     * is still at the front of the buffer. */
    if (w->replay && replay_check_and_add(w->replay, REPLAY_TCP, b->data, salt_len)) {
        metrics_add(&w->stats->replays, 1);
        session_probe(s, "replayed salt");
        return;
    }
    b->start += used;
    p->iov_n = p->iov_i = 0;
    if (plen > (size_t)hlen) {
        p->iov[0].iov_base = payload + hlen;
        p->iov[0].iov_len = plen - hlen;
        p->iov_n = 1;
    }
    ev_io_stop(w->loop, &s->client.rio);
    session_connect_target(s);
}

/* ---- local: SOCKS5 ---- */

static int write_all_small(int fd, const uint8_t *b, size_t n)
{
    /* Replies are a few bytes on a fresh socket: a short write means the client is broken. */
    return write(fd, b, n) == (ssize_t)n ? 0 : -1;
}

static void socks5_reply_close(struct session *s, uint8_t rep)
{
    uint8_t out[32];
    int n = socks5_write_reply(out, sizeof out, rep, NULL);
    if (n > 0)
        write_all_small(s->client.fd, out, n);
    session_close(s);
}

static void socks5_udp_associate(struct session *s)
{
    struct worker *w = s->w;
    struct sockaddr_storage bound;
    socklen_t len = sizeof bound;
    uint8_t out[32];

    if (w->nudp == 0 || getsockname(s->client.fd, (struct sockaddr *)&bound, &len) < 0) {
        socks5_reply_close(s, SOCKS5_REP_COMMAND_NOT_SUPPORTED);
        return;
    }
    s->udp_handle = udp_relay_socks5_open(w->udp[0], (struct sockaddr *)&s->peer);
    int n = socks5_write_reply(out, sizeof out, SOCKS5_REP_SUCCEEDED, (struct sockaddr *)&bound);
    if (s->udp_handle < 0 || n < 0 || write_all_small(s->client.fd, out, n) < 0) {
        session_close(s);
        return;
    }
    /* RFC 1928 section 7: the association lives as long as this TCP connection. */
    s->stage = STAGE_UDP_HOLD;
    ev_timer_stop(w->loop, &s->timer);
}

static void socks5_on_read(struct session *s)
{
    ssize_t n = session_read_client(s, SOCKS5_READ_MAX);
    if (n == -1)
        return;
    if (n <= 0) {
        session_close(s);
        return;
    }
    struct buf *b = s->up.buf;
    size_t used;
    if (s->socks_state == 0) {
        uint8_t method, reply[2] = {SOCKS5_VERSION, 0};
        int r = socks5_parse_greeting(b->data + b->start, buf_len(b), &used, &method);
        if (r == SOCKS5_NEED_MORE)
            return;
        if (r == SOCKS5_BAD) {
            session_close(s);
            return;
        }
        reply[1] = method;
        if (write_all_small(s->client.fd, reply, 2) < 0 || method != SOCKS5_METHOD_NOAUTH) {
            session_close(s);
            return;
        }
        b->start += used;
        s->socks_state = 1;
    }
    struct socks5_request req;
    int r = socks5_parse_request(b->data + b->start, buf_len(b), &used, &req);
    if (r == SOCKS5_NEED_MORE)
        return;
    if (r == SOCKS5_BAD) {
        socks5_reply_close(s, SOCKS5_REP_GENERAL_FAILURE);
        return;
    }
    const uint8_t *header = b->data + b->start + req.header_offset;
    b->start += used;
    if (req.cmd == SOCKS5_CMD_UDP_ASSOCIATE) {
        socks5_udp_associate(s);
        return;
    }
    if (req.cmd != SOCKS5_CMD_CONNECT) {
        socks5_reply_close(s, SOCKS5_REP_COMMAND_NOT_SUPPORTED);
        return;
    }
    /* Reply at once, before the server is reached (as ss-local does): the client's first bytes
     * then travel in the same chunk as the address header. */
    uint8_t out[32];
    int k = socks5_write_reply(out, sizeof out, SOCKS5_REP_SUCCEEDED, NULL);
    if (k < 0 || write_all_small(s->client.fd, out, k) < 0) {
        session_close(s);
        return;
    }
    uint8_t hdr[NETADDR_HEADER_MAX];
    memcpy(hdr, header, req.header_len);
    start_local_connect(s, hdr, req.header_len);
}

void handshake_on_read(struct session *s)
{
    if (s->w->cfg->role == ROLE_SERVER)
        server_on_read(s);
    else
        socks5_on_read(s);
}
