/* control.c: the master -> worker control channel's records and the users payload (see
 * control.h). The payload is a flat byte format in host order (both ends are the same binary
 * on the same machine), read by a parser that checks every length against what is left. */
#include "autoconfig.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "control.h"
#include "netaddr.h"

#define CONTROL_PAYLOAD_MAGIC 0x53555052u /* "RPUS" */
/* A user's name in the payload, at most (the file's names are far shorter in practice). */
#define CONTROL_NAME_MAX 4096

int control_send(int sock, const struct control_msg *msg, int fd)
{
    return netaddr_send_fd(sock, msg, sizeof *msg, fd);
}

int control_recv(int sock, struct control_msg *msg, int *fd)
{
    bool truncated;
    ssize_t n = netaddr_recv_fd(sock, msg, sizeof *msg, fd, &truncated);

    if (n <= 0)
        return n == 0 ? 0 : -1;
    if (n != (ssize_t)sizeof *msg || msg->magic != CONTROL_MAGIC || truncated) {
        if (*fd >= 0)
            close(*fd);
        *fd = -1;
        errno = EAGAIN;
        return -1;
    }
    msg->why[sizeof msg->why - 1] = '\0';
    return 1;
}

/* ---- the payload ---- */

/* Appends len bytes at *at when they fit (the length is counted either way). */
static void put(uint8_t *out, size_t cap, size_t *at, const void *p, size_t len)
{
    if (*at + len <= cap)
        memcpy(out + *at, p, len);
    *at += len;
}

static void put_u32(uint8_t *out, size_t cap, size_t *at, uint32_t v)
{
    put(out, cap, at, &v, sizeof v);
}

static void put_key(uint8_t *out, size_t cap, size_t *at, const struct crypto_key *k)
{
    put_u32(out, cap, at, (uint32_t)k->method);
    put_u32(out, cap, at, (uint32_t)k->len);
    put(out, cap, at, k->bytes, k->len);
}

size_t control_users_pack(const struct config *c, uint8_t *out, size_t cap)
{
    size_t at = 0;

    put_u32(out, cap, &at, CONTROL_PAYLOAD_MAGIC);
    put_u32(out, cap, &at, (uint32_t)c->n_port);
    for (int i = 0; i < c->n_port; i++) {
        const struct config_port *p = &c->ports[i];
        put_u32(out, cap, &at, p->port);
        put_key(out, cap, &at, &p->key);
        put_u32(out, cap, &at, (uint32_t)p->mode);
        put_u32(out, cap, &at, p->has_key ? 1u : 0u);
        put_u32(out, cap, &at, (uint32_t)p->metrics_slot);
        put_u32(out, cap, &at, (uint32_t)p->n_users);
        for (int u = 0; u < p->n_users; u++) {
            const struct config_user *cu = &p->users[u];
            size_t len = strlen(cu->name);
            put_u32(out, cap, &at, (uint32_t)(len < CONTROL_NAME_MAX ? len : CONTROL_NAME_MAX));
            put(out, cap, &at, cu->name, len < CONTROL_NAME_MAX ? len : CONTROL_NAME_MAX);
            put_key(out, cap, &at, &cu->key);
            put_u32(out, cap, &at, (uint32_t)cu->metrics_slot);
        }
    }
    return at;
}

struct control_reader {
    const uint8_t *buf;
    size_t len, at;
};

static int get(struct control_reader *r, void *p, size_t len)
{
    if (len > r->len - r->at)
        return -1;
    memcpy(p, r->buf + r->at, len);
    r->at += len;
    return 0;
}

static int get_u32(struct control_reader *r, uint32_t *v)
{
    return get(r, v, sizeof *v);
}

static int get_key(struct control_reader *r, struct crypto_key *k)
{
    uint32_t method, len;
    memset(k, 0, sizeof *k);
    if (get_u32(r, &method) < 0 || get_u32(r, &len) < 0 || method >= CRYPTO_METHOD_COUNT ||
        len > CRYPTO_MAX_KEY)
        return -1;
    k->method = (enum crypto_method)method;
    k->len = len;
    return get(r, k->bytes, len);
}

static int parse_user(struct control_reader *r, struct control_user *u)
{
    uint32_t len, slot;
    if (get_u32(r, &len) < 0 || len == 0 || len > CONTROL_NAME_MAX || len > r->len - r->at)
        return -1;
    u->name = (const char *)r->buf + r->at;
    u->name_len = len;
    r->at += len;
    if (get_key(r, &u->key) < 0 || get_u32(r, &slot) < 0)
        return -1;
    u->metrics_slot = (int32_t)slot < 0 ? -1 : (int)(int32_t)slot;
    return 0;
}

int control_users_parse(const uint8_t *buf, size_t len, struct control_users *out)
{
    struct control_reader r = {buf, len, 0};
    uint32_t magic, nport;

    memset(out, 0, sizeof *out);
    if (get_u32(&r, &magic) < 0 || magic != CONTROL_PAYLOAD_MAGIC || get_u32(&r, &nport) < 0 ||
        nport > CONFIG_MAX_PORTS)
        return -1;
    for (uint32_t i = 0; i < nport; i++) {
        struct control_port *p = &out->ports[i];
        uint32_t port, n, mode, has_key, slot;
        if (get_u32(&r, &port) < 0 || port > 65535 || get_key(&r, &p->key) < 0 ||
            get_u32(&r, &mode) < 0 || mode > MODE_UDP_ONLY || get_u32(&r, &has_key) < 0 ||
            has_key > 1 || get_u32(&r, &slot) < 0 || get_u32(&r, &n) < 0 ||
            n > CONFIG_MAX_USERS)
            goto fail;
        p->port = (uint16_t)port;
        p->mode = (enum config_mode)mode;
        p->has_key = has_key != 0;
        p->metrics_slot = (int32_t)slot < 0 ? -1 : (int)(int32_t)slot;
        out->n_port = (int)i + 1;
        p->users = calloc(n ? n : 1, sizeof *p->users);
        if (!p->users)
            goto fail;
        for (p->n_users = 0; p->n_users < (int)n; p->n_users++)
            if (parse_user(&r, &p->users[p->n_users]) < 0)
                goto fail;
    }
    if (r.at == len)
        return 0;
fail:
    control_users_free(out);
    return -1;
}

void control_users_free(struct control_users *u)
{
    for (int i = 0; i < u->n_port; i++) {
        if (u->ports[i].users)
            crypto_wipe(u->ports[i].users, (size_t)u->ports[i].n_users * sizeof *u->ports[i].users);
        free(u->ports[i].users);
    }
    memset(u, 0, sizeof *u);
}

int control_users_memfd(const struct config *c)
{
    size_t len = control_users_pack(c, NULL, 0);
    uint8_t *buf = malloc(len);
    int fd = memfd_create("reuseproxy-users", MFD_CLOEXEC);
    int saved;

    if (!buf || fd < 0)
        goto fail;
    control_users_pack(c, buf, len);
    for (size_t at = 0; at < len;) {
        ssize_t n = write(fd, buf + at, len - at);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            goto fail;
        at += (size_t)n;
    }
    crypto_wipe(buf, len);
    free(buf);
    return fd;
fail:
    saved = errno ? errno : ENOMEM;
    if (buf)
        crypto_wipe(buf, len);
    free(buf);
    if (fd >= 0)
        close(fd);
    errno = saved;
    return -1;
}
