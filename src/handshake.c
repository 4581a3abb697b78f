/* handshake.c: how each role learns its target (handshake.h), as pure functions over the
 * client's bytes. The server side gives every failure before authentication succeeds the same
 * verdict (silent), so relay.c treats them alike and a prober cannot tell them apart. */
#include "autoconfig.h"

#include "handshake.h"

#include <errno.h>
#include <string.h>

#include "socks5.h"

/* SOCKS5 requests are small; early data beyond this waits for the relay. */
#define HANDSHAKE_SOCKS5_READ_MAX 4096

void handshake_init(struct handshake *h, enum config_role role, struct proto_conn *conn,
                    struct proto_dir *dir)
{
    memset(h, 0, sizeof *h);
    h->role = role;
    h->socks = HANDSHAKE_SOCKS_GREETING;
    h->conn = conn;
    h->dir = dir;
}

static void out_reset(struct handshake_out *out)
{
    memset(out, 0, sizeof *out);
}

static enum handshake_verdict fail(struct handshake_out *out, const char *reason)
{
    out->verdict = HANDSHAKE_FAIL;
    out->reason = reason;
    return out->verdict;
}

enum handshake_verdict handshake_begin(struct handshake *h, const struct netaddr_target *fixed,
                                       struct handshake_out *out)
{
    out_reset(out);
    if (h->role != ROLE_TUNNEL && h->role != ROLE_REDIR)
        return HANDSHAKE_NEED_MORE;
    int n = netaddr_write_header(fixed, out->header, sizeof out->header);
    if (n < 0)
        return fail(out, "the destination cannot be sent");
    out->header_len = (size_t)n;
    out->verdict = HANDSHAKE_TARGET;
    return out->verdict;
}

size_t handshake_read_max(const struct handshake *h)
{
    return h->role == ROLE_SERVER ? SIZE_MAX : HANDSHAKE_SOCKS5_READ_MAX;
}

/* ---- server: the request's first flight ---- */

static enum handshake_verdict server_feed(struct handshake *h, uint8_t *buf, size_t len, bool full,
                                          struct handshake_out *out)
{
    struct proto_request req;
    int r = h->conn->ctx->ops->open_request(h->conn, h->dir, buf, len, &req);

    out->silent = true;
    if (r == PROTO_NEED_MORE)
        return full ? fail(out, "oversized first chunk") : HANDSHAKE_NEED_MORE;
    if (r != PROTO_DONE) {
        out->replayed = r == PROTO_REPLAYED;
        return fail(out, req.reason);
    }
    out->silent = false;
    out->target = req.target;
    out->early = req.payload;
    out->early_len = req.payload_len;
    out->consumed = req.consumed;
    out->verdict = HANDSHAKE_TARGET;
    return out->verdict;
}

/* ---- local: SOCKS5 ---- */

static void reply_add(struct handshake_out *out, uint8_t rep)
{
    int n = socks5_write_reply(out->reply + out->reply_len, sizeof out->reply - out->reply_len, rep,
                               NULL);
    if (n > 0)
        out->reply_len += (size_t)n;
}

/* Section 3. Returns NEED_MORE to go on to the request, or FAIL. */
static enum handshake_verdict socks5_greeting(struct handshake *h, const uint8_t *buf, size_t len,
                                              struct handshake_out *out)
{
    uint8_t method;
    size_t used;
    int r = socks5_parse_greeting(buf, len, &used, &method);

    if (r == SOCKS5_NEED_MORE)
        return HANDSHAKE_NEED_MORE;
    if (r == SOCKS5_BAD)
        return fail(out, "malformed SOCKS5 greeting");
    out->reply[0] = SOCKS5_VERSION;
    out->reply[1] = method;
    out->reply_len = 2;
    if (method != SOCKS5_METHOD_NOAUTH)
        return fail(out, "no acceptable SOCKS5 method");
    out->consumed = used;
    h->socks = HANDSHAKE_SOCKS_REQUEST;
    return HANDSHAKE_NEED_MORE;
}

/* Section 4. */
static enum handshake_verdict socks5_request(struct handshake *h, const uint8_t *buf, size_t len,
                                             struct handshake_out *out)
{
    struct socks5_request req;
    size_t used;
    int r = socks5_parse_request(buf, len, &used, &req);

    if (r == SOCKS5_NEED_MORE)
        return HANDSHAKE_NEED_MORE;
    if (r == SOCKS5_BAD) {
        reply_add(out, SOCKS5_REP_GENERAL_FAILURE);
        return fail(out, "malformed SOCKS5 request");
    }
    out->consumed += used;
    h->socks = HANDSHAKE_SOCKS_DONE;
    if (req.cmd == SOCKS5_CMD_UDP_ASSOCIATE) {
        out->verdict = HANDSHAKE_UDP_ASSOCIATE;
        return out->verdict;
    }
    if (req.cmd != SOCKS5_CMD_CONNECT) {
        reply_add(out, SOCKS5_REP_COMMAND_NOT_SUPPORTED);
        return fail(out, "unsupported SOCKS5 command");
    }
    /* No reply yet: the relay answers with handshake_connect_reply once it knows whether the
     * server (or a bypassed target) could be reached, so that a client learns of a dead server
     * from the reply code rather than from an empty stream (issue 13 item 10). Bytes the client
     * sent before the reply still travel in the first chunk with the address header. */
    memcpy(out->header, buf + req.header_offset, req.header_len);
    out->header_len = req.header_len;
    out->target = req.target;
    out->verdict = HANDSHAKE_TARGET;
    return out->verdict;
}

static enum handshake_verdict socks5_feed(struct handshake *h, const uint8_t *buf, size_t len,
                                          struct handshake_out *out)
{
    if (h->socks == HANDSHAKE_SOCKS_GREETING) {
        enum handshake_verdict v = socks5_greeting(h, buf, len, out);
        if (v != HANDSHAKE_NEED_MORE || h->socks == HANDSHAKE_SOCKS_GREETING)
            return v;
    }
    if (h->socks != HANDSHAKE_SOCKS_REQUEST)
        return fail(out, "SOCKS5 handshake already done");
    return socks5_request(h, buf + out->consumed, len - out->consumed, out);
}

enum handshake_verdict handshake_feed(struct handshake *h, uint8_t *buf, size_t len, bool full,
                                      struct handshake_out *out)
{
    out_reset(out);
    switch (h->role) {
    case ROLE_SERVER:
        return server_feed(h, buf, len, full, out);
    case ROLE_LOCAL:
        return socks5_feed(h, buf, len, out);
    case ROLE_TUNNEL:
    case ROLE_REDIR:
        break;
    }
    return fail(out, "the tunnel and redir roles read no handshake");
}

int handshake_connect_reply(int err, uint8_t *out, size_t cap)
{
    uint8_t rep;

    switch (err) {
    case 0:
        rep = SOCKS5_REP_SUCCEEDED;
        break;
    case ECONNREFUSED:
        rep = SOCKS5_REP_CONNECTION_REFUSED;
        break;
    case ENETUNREACH:
        rep = SOCKS5_REP_NETWORK_UNREACHABLE;
        break;
    case EHOSTUNREACH:
    case ETIMEDOUT:
    case EHOSTDOWN:
    case ENOENT: /* the name did not resolve */
        rep = SOCKS5_REP_HOST_UNREACHABLE;
        break;
    default:
        rep = SOCKS5_REP_GENERAL_FAILURE;
    }
    return socks5_write_reply(out, cap, rep, NULL);
}

int handshake_udp_reply(bool enabled, const struct sockaddr *bound, uint8_t *out, size_t cap)
{
    /* RFC 1928 section 6: X'07' when UDP is off, X'01' when it is on but failed here */
    if (!bound)
        return socks5_write_reply(
            out, cap, enabled ? SOCKS5_REP_GENERAL_FAILURE : SOCKS5_REP_COMMAND_NOT_SUPPORTED,
            NULL);
    return socks5_write_reply(out, cap, SOCKS5_REP_SUCCEEDED, bound);
}
