/* handshake.c: how each role learns its target (handshake.h), as pure functions over the
 * client's bytes. The server side gives every failure before authentication succeeds the same
 * verdict (silent), so relay.c treats them alike and a prober cannot tell them apart. */
#include "autoconfig.h"

#include "handshake.h"

#include <errno.h>
#include <string.h>

#include "crypto.h"
#include "http_proxy.h"
#include "socks5.h"

/* SOCKS5 requests are small; early data beyond this waits for the relay. An HTTP head may be
 * longer: the local role reads up to one byte past the longest head it accepts. */
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

void handshake_set_local(struct handshake *h, enum config_protocol protocol,
                         const struct config_user *users, int n_users)
{
    h->protocol = protocol;
    h->users = n_users > 0 ? users : NULL;
    h->n_users = n_users > 0 ? n_users : 0;
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
    if (h->role == ROLE_SERVER)
        return SIZE_MAX;
    return h->role == ROLE_LOCAL && h->protocol != PROTOCOL_SOCKS ? HTTP_PROXY_HEAD_MAX + 1
                                                                  : HANDSHAKE_SOCKS5_READ_MAX;
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
    uint8_t method, wanted = h->users ? SOCKS5_METHOD_USERPASS : SOCKS5_METHOD_NOAUTH;
    size_t used;
    int r = socks5_parse_greeting_for(buf, len, wanted, &used, &method);

    if (r == SOCKS5_NEED_MORE)
        return HANDSHAKE_NEED_MORE;
    if (r == SOCKS5_BAD)
        return fail(out, "malformed SOCKS5 greeting");
    out->reply[out->reply_len++] = SOCKS5_VERSION;
    out->reply[out->reply_len++] = method;
    if (method != wanted)
        return fail(out, h->users ? "SOCKS5 client offers no username/password (local_users)"
                                  : "no acceptable SOCKS5 method");
    out->consumed += used;
    h->socks = h->users ? HANDSHAKE_SOCKS_AUTH : HANDSHAKE_SOCKS_REQUEST;
    return HANDSHAKE_NEED_MORE;
}

/* RFC 1929 section 2: a name and a password are 1 to 255 bytes each (config_check.c holds
 * local_users to that; HTTP Basic, RFC 7617, is given no more room). */
#define HANDSHAKE_CRED_MAX 255

/* Zero when stored (a C string) is exactly given[0..len), else nonzero. It reads the same
 * HANDSHAKE_CRED_MAX + 1 positions whatever both hold, without a branch on their bytes, so its
 * time tells neither where they differ nor stored's length; after stored's NUL it keeps reading
 * that NUL (ended), never past it. Length given: len <= HANDSHAKE_CRED_MAX (the caller). */
static unsigned cred_diff(const char *stored, const uint8_t *given, size_t len)
{
    unsigned diff = 0;
    size_t at = 0, stored_len = 0;

    for (size_t k = 0; k <= HANDSHAKE_CRED_MAX; k++) {
        uint8_t s = (uint8_t)stored[at];
        uint8_t g = k < len ? given[k] : 0; /* len is the client's own, not a secret */
        unsigned more = s != 0;
        diff |= (unsigned)(s ^ g);
        at += more;
        stored_len += more;
    }
    return diff | (unsigned)(stored_len ^ len);
}

bool handshake_local_user_ok(const struct config_user *users, int n_users, const uint8_t *name,
                             size_t name_len, const uint8_t *pass, size_t pass_len)
{
    unsigned found = 0;

    if (name_len > HANDSHAKE_CRED_MAX || pass_len > HANDSHAKE_CRED_MAX)
        return false; /* no user has one that long */
    /* Every user, name and password both, with no early exit: the time of a refusal says
     * nothing about which names exist (a name compared first would tell a wrong name from a
     * wrong password), nor about where a password differs. */
    for (int i = 0; i < n_users; i++) {
        unsigned d =
            cred_diff(users[i].name, name, name_len) | cred_diff(users[i].password, pass, pass_len);
        found |= d == 0;
    }
    return found != 0;
}

/* RFC 1929 section 2: one answer, success or failure; a failure closes the connection. */
static enum handshake_verdict socks5_auth(struct handshake *h, const uint8_t *buf, size_t len,
                                          struct handshake_out *out)
{
    struct socks5_userpass up;
    size_t used;
    int r = socks5_parse_userpass(buf, len, &used, &up);

    if (r == SOCKS5_NEED_MORE)
        return HANDSHAKE_NEED_MORE;
    bool ok = r == SOCKS5_DONE && handshake_local_user_ok(h->users, h->n_users, up.user,
                                                          up.user_len, up.pass, up.pass_len);
    int n = socks5_write_userpass_reply(out->reply + out->reply_len,
                                        sizeof out->reply - out->reply_len, ok);
    if (n > 0)
        out->reply_len += (size_t)n;
    if (!ok)
        return fail(out, r == SOCKS5_BAD ? "malformed SOCKS5 username/password"
                                         : "wrong SOCKS5 username or password");
    out->consumed += used;
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

/* The stages in order, as far as the bytes go: greeting, authentication, request. */
static enum handshake_verdict socks5_feed(struct handshake *h, const uint8_t *buf, size_t len,
                                          struct handshake_out *out)
{
    for (;;) {
        enum handshake_socks before = h->socks;
        const uint8_t *at = buf + out->consumed;
        size_t left = len - out->consumed;
        enum handshake_verdict v;
        if (before == HANDSHAKE_SOCKS_GREETING)
            v = socks5_greeting(h, at, left, out);
        else if (before == HANDSHAKE_SOCKS_AUTH)
            v = socks5_auth(h, at, left, out);
        else if (before == HANDSHAKE_SOCKS_REQUEST)
            return socks5_request(h, at, left, out);
        else
            return fail(out, "SOCKS5 handshake already done");
        if (v != HANDSHAKE_NEED_MORE || h->socks == before)
            return v;
    }
}

/* ---- local: SOCKS4/4a CONNECT ---- */

static enum handshake_verdict socks4_feed(struct handshake *h, const uint8_t *buf, size_t len,
                                          struct handshake_out *out)
{
    struct socks4_request req;
    size_t used;
    int r = socks4_parse_request(buf, len, &used, &req);
    const char *why = NULL;

    if (r == SOCKS5_NEED_MORE)
        return HANDSHAKE_NEED_MORE;
    if (r == SOCKS5_BAD)
        why = "malformed SOCKS4 request, or a user id or host over 255 bytes";
    else if (req.cmd != SOCKS5_CMD_CONNECT)
        why = "unsupported SOCKS4 command";
    else if (h->users) /* SOCKS4 has a user id but no password */
        why = "SOCKS4 carries no password, and local_users are set";
    if (why) {
        out->reply_len = (size_t)socks4_write_reply(out->reply, sizeof out->reply, false);
        return fail(out, why);
    }
    memcpy(out->header, req.header, req.header_len);
    out->header_len = req.header_len;
    out->target = req.target;
    out->consumed = used;
    out->verdict = HANDSHAKE_TARGET;
    return out->verdict;
}

/* ---- local: HTTP proxy ---- */

static enum handshake_verdict http_refuse(struct handshake_out *out, int status, const char *why)
{
    int n = http_proxy_write_status(out->reply, sizeof out->reply, status);
    out->reply_len = n > 0 ? (size_t)n : 0;
    return fail(out, why);
}

/* RFC 7617 section 2: base64 of "name:password". */
static bool http_auth_ok(const struct handshake *h, const uint8_t *buf,
                         const struct http_proxy_request *req)
{
    char b64[4 * ((255 + 1 + 255 + 2) / 3) + 1];
    uint8_t plain[sizeof b64];
    size_t n;

    if (req->auth_len == 0 || req->auth_len >= sizeof b64)
        return false;
    memcpy(b64, buf + req->auth_off, req->auth_len);
    b64[req->auth_len] = '\0';
    if (crypto_base64_decode(b64, plain, sizeof plain, &n) != 0)
        return false;
    const uint8_t *colon = memchr(plain, ':', n);
    if (!colon)
        return false;
    size_t name_len = (size_t)(colon - plain);
    return handshake_local_user_ok(h->users, h->n_users, plain, name_len, colon + 1,
                                   n - name_len - 1);
}

/* An absolute-form request, rewritten in place: origin-form and its hop-by-hop headers gone
 * (http_proxy_rewrite), followed by whatever body bytes came with it. */
static int http_rewrite_in_place(uint8_t *buf, size_t len, size_t cap,
                                 const struct http_proxy_request *req, size_t *new_len)
{
    uint8_t head[HTTP_PROXY_HEAD_MAX + HTTP_PROXY_REWRITE_EXTRA];
    long n = http_proxy_rewrite(buf, req, head, sizeof head);
    size_t body = len - req->head_len;

    if (n < 0 || (size_t)n > cap - body)
        return -1;
    memmove(buf + n, buf + req->head_len, body);
    memcpy(buf, head, (size_t)n);
    *new_len = (size_t)n + body;
    return 0;
}

static enum handshake_verdict http_feed(struct handshake *h, uint8_t *buf, size_t len, size_t cap,
                                        struct handshake_out *out)
{
    struct http_proxy_request req;
    int r = http_proxy_parse(buf, len, &req);

    if (r == HTTP_PROXY_NEED_MORE)
        return HANDSHAKE_NEED_MORE;
    if (r == HTTP_PROXY_BAD)
        return http_refuse(out, req.status,
                           req.status == 400 ? "malformed HTTP proxy request"
                                             : "HTTP proxy request line or headers too large");
    if (h->users && !http_auth_ok(h, buf, &req))
        return http_refuse(out, 407, "HTTP proxy credentials missing or wrong");
    int n = netaddr_write_header(&req.target, out->header, sizeof out->header);
    if (n < 0)
        return http_refuse(out, 400, "HTTP proxy target cannot be sent");
    out->header_len = (size_t)n;
    out->target = req.target;
    if (req.connect) {
        h->local = HANDSHAKE_LOCAL_HTTP_CONNECT;
        out->consumed = req.head_len;
    } else {
        if (http_rewrite_in_place(buf, len, cap, &req, &out->input_len) != 0)
            return http_refuse(out, 431, "HTTP proxy request too large to rewrite");
        h->local = HANDSHAKE_LOCAL_HTTP_FORWARD;
    }
    out->verdict = HANDSHAKE_TARGET;
    return out->verdict;
}

/* The first byte says what the client speaks (shadowsocks-rust's local tells them apart the
 * same way): SOCKS5 and SOCKS4 by their version byte, HTTP by the method's first letter. */
static enum handshake_verdict local_feed(struct handshake *h, uint8_t *buf, size_t len, size_t cap,
                                         struct handshake_out *out)
{
    if (h->local == HANDSHAKE_LOCAL_UNKNOWN && len > 0) {
        bool socks = h->protocol != PROTOCOL_HTTP, http = h->protocol != PROTOCOL_SOCKS;
        uint8_t b = buf[0] | 0x20;
        if (buf[0] == SOCKS5_VERSION && socks)
            h->local = HANDSHAKE_LOCAL_SOCKS5;
        else if (buf[0] == SOCKS4_VERSION && socks)
            h->local = HANDSHAKE_LOCAL_SOCKS4;
        else if (b >= 'a' && b <= 'z' && http)
            h->local = HANDSHAKE_LOCAL_HTTP;
        else
            return fail(out, "neither a SOCKS nor an HTTP request this port accepts");
    }
    switch (h->local) {
    case HANDSHAKE_LOCAL_UNKNOWN:
        return HANDSHAKE_NEED_MORE;
    case HANDSHAKE_LOCAL_SOCKS5:
        return socks5_feed(h, buf, len, out);
    case HANDSHAKE_LOCAL_SOCKS4:
        return socks4_feed(h, buf, len, out);
    case HANDSHAKE_LOCAL_HTTP:
        return http_feed(h, buf, len, cap, out);
    default:
        return fail(out, "HTTP proxy handshake already done");
    }
}

enum handshake_verdict handshake_feed(struct handshake *h, uint8_t *buf, size_t len, size_t cap,
                                      bool full, struct handshake_out *out)
{
    out_reset(out);
    out->input_len = len;
    switch (h->role) {
    case ROLE_SERVER:
        return server_feed(h, buf, len, full, out);
    case ROLE_LOCAL:
        return local_feed(h, buf, len, cap < len ? len : cap, out);
    case ROLE_TUNNEL:
    case ROLE_REDIR:
        break;
    }
    return fail(out, "the tunnel and redir roles read no handshake");
}

int handshake_connect_reply(const struct handshake *h, int err, uint8_t *out, size_t cap)
{
    uint8_t rep;

    switch (h->local) {
    case HANDSHAKE_LOCAL_SOCKS4:
        return socks4_write_reply(out, cap, err == 0);
    case HANDSHAKE_LOCAL_HTTP_FORWARD:
        if (err == 0)
            return 0; /* the origin's response is the answer */
        /* fall through */
    case HANDSHAKE_LOCAL_HTTP_CONNECT:
        return http_proxy_write_status(out, cap,
                                       err == 0           ? 200
                                       : err == EACCES    ? 403
                                       : err == ETIMEDOUT ? 504
                                                          : 502);
    default:
        break;
    }

    switch (err) {
    case 0:
        rep = SOCKS5_REP_SUCCEEDED;
        break;
    case EACCES: /* the ACL refused the target: "connection not allowed by ruleset" */
        rep = SOCKS5_REP_NOT_ALLOWED;
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
