/* manager_server.c: the ss-manager API's endpoint in the master's loop (manager.h). One datagram
 * socket, a unix socket (created mode 0600: whoever can write to it can add ports and read every
 * password) or a loopback UDP address; each datagram is one command, answered to its sender. The
 * panel is the last peer that sent a valid command: it hears "stat: {...}" every
 * MANAGER_STAT_INTERVAL seconds, as libev's ss-manager forwards its servers' reports.
 *
 * The endpoint keeps the API's list of ports. A change is tried on a copy: the master's hook
 * builds and applies the configuration "file + the copy" (master.c), and only when that succeeds
 * does the copy become the list, written to manager_state. Anything refused leaves everything as
 * it was and answers "err". */
#include "autoconfig.h"

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "manager.h"

/* "stat: {...}" for every port: 1024 ports of 26 bytes each fit with room to spare. */
#define MANAGER_REPLY_MAX 65000
/* The "list" reply can be longer (about 60 bytes and the password per port: 255-byte passwords
 * need a list of up to 1.6 MB for 1024 ports, 6 bytes of JSON per control character).
 * On UDP one datagram holds at most 65,507 bytes (IPv4: 65,535 less the IP and UDP headers; IPv6
 * allows 65,527 without jumbograms, RFC 2675, and the smaller limit serves both); a longer
 * list answers "err". On a unix socket a datagram is bounded by the sender's SO_SNDBUF (Linux
 * refuses one longer than it, less 32 bytes: EMSGSIZE, unix(7)); the endpoint raises it for a
 * long list, up to net.core.wmem_max (the kernel doubles the value asked, for its overhead), and
 * never past MANAGER_UNIX_REPLY_MAX. */
#define MANAGER_UDP_REPLY_MAX 65507
#define MANAGER_UNIX_REPLY_MAX (4u << 20)

struct manager_server {
    struct ev_loop *loop;
    int fd;
    ev_io io;
    ev_timer stat_timer;
    struct manager_hooks hooks;
    struct manager_ports ports; /* the API's ports, as applied */
    char *state_path;           /* manager_state, or NULL */
    enum crypto_method method;  /* the file's, for an "add" without one */
    char unix_path[108];        /* the socket file it made, unlinked at the end; "" for UDP */
    dev_t unix_dev;             /* ... unless another process has replaced it since */
    ino_t unix_ino;
    struct sockaddr_storage panel; /* the last peer that sent a valid command */
    socklen_t panel_len;
    char *reply;                 /* MANAGER_REPLY_MAX bytes */
    char *list;                  /* the last "list" reply (malloc'd), sent instead when set */
    struct log_ratelimit rl_bad; /* bad commands */
};

static void manager_send(struct manager_server *s, const char *text, size_t len,
                         const struct sockaddr_storage *to, socklen_t tolen)
{
    /* non-blocking: a panel that does not read loses replies, the master never waits */
    if (tolen > 0 && sendto(s->fd, text, len, MSG_DONTWAIT, (const struct sockaddr *)to, tolen) < 0)
        log_debug("manager: reply not sent: %s", strerror(errno));
}

/* "stat: {...}" of every port the master serves, into s->reply. Its length, or -1. */
static int manager_stat_text(struct manager_server *s)
{
    uint16_t ports[CONFIG_MAX_PORTS];
    uint64_t bytes[CONFIG_MAX_PORTS];
    int n = s->hooks.stat(s->hooks.arg, ports, bytes, CONFIG_MAX_PORTS);
    return manager_format_stat(ports, bytes, n, s->reply, MANAGER_REPLY_MAX);
}

/* Room in a datagram of s's socket for a reply of len bytes: on a unix socket SO_SNDBUF is
 * raised when it is too small (see MANAGER_UNIX_REPLY_MAX). 0, or -1 with why. */
static int manager_reply_room(struct manager_server *s, size_t len, char *why, size_t whylen)
{
    int have = 0;
    socklen_t optlen = sizeof have;

    if (!s->unix_path[0]) {
        if (len <= MANAGER_UDP_REPLY_MAX)
            return 0;
        snprintf(why, whylen,
                 "the list is %zu bytes, more than a UDP datagram holds (%d): "
                 "use a unix manager_address",
                 len, MANAGER_UDP_REPLY_MAX);
        return -1;
    }
    if (len > MANAGER_UNIX_REPLY_MAX) {
        snprintf(why, whylen, "the list is %zu bytes, more than %u", len, MANAGER_UNIX_REPLY_MAX);
        return -1;
    }
    if (getsockopt(s->fd, SOL_SOCKET, SO_SNDBUF, &have, &optlen) == 0 && (size_t)have >= len + 64)
        return 0;
    int want = (int)len + 4096; /* the kernel doubles it: room for its own accounting */
    optlen = sizeof have;
    if (setsockopt(s->fd, SOL_SOCKET, SO_SNDBUF, &want, sizeof want) == 0 &&
        getsockopt(s->fd, SOL_SOCKET, SO_SNDBUF, &have, &optlen) == 0 && (size_t)have >= len + 64)
        return 0;
    snprintf(why, whylen,
             "the list is %zu bytes, more than the socket's send buffer (%d): "
             "raise net.core.wmem_max",
             len, have);
    return -1;
}

/* Forgets the last "list" reply: it holds every password. */
static void manager_list_drop(struct manager_server *s)
{
    if (s->list)
        explicit_bzero(s->list, strlen(s->list));
    free(s->list);
    s->list = NULL;
}

/* The "list" reply into s->list. Its length, or -1 with why. */
static int manager_list_text(struct manager_server *s, char *why, size_t whylen)
{
    manager_list_drop(s);
    if (!(s->list = manager_ports_to_json(&s->ports))) {
        snprintf(why, whylen, "list: out of memory");
        return -1;
    }
    size_t len = strlen(s->list);
    if (len > INT_MAX || manager_reply_room(s, len, why, whylen) != 0) {
        manager_list_drop(s);
        return -1;
    }
    return (int)len;
}

/* Tries next (the list with the change); on success it becomes the list. */
static int manager_change(struct manager_server *s, struct manager_ports *next, char *why,
                          size_t whylen)
{
    char err[512];
    if (s->hooks.apply(s->hooks.arg, next, why, whylen) != 0)
        return -1;
    manager_ports_free(&s->ports);
    s->ports = *next;
    memset(next, 0, sizeof *next);
    if (s->state_path && manager_state_save(s->state_path, &s->ports, err, sizeof err) != 0)
        log_error("manager: %s; the change is applied, but a restart would lose it", err);
    return 0;
}

/* Acts on one command; the reply is in s->reply. Returns its length, or -1 for "err". */
static int manager_execute(struct manager_server *s, struct manager_cmd *cmd, char *why,
                           size_t whylen)
{
    struct manager_ports next = {0};
    int rc = 0;

    switch (cmd->verb) {
    case MANAGER_PING:
        return manager_stat_text(s);
    case MANAGER_LIST:
        return manager_list_text(s, why, whylen);
    case MANAGER_ADD:
        if (!cmd->port.has_method)
            cmd->port.method = s->method;
        cmd->port.has_method = true;
        rc = manager_ports_copy(&next, &s->ports) == 0 ? manager_ports_add(&next, &cmd->port) : -1;
        if (rc != 0)
            snprintf(why, whylen, "port %u was added already", cmd->port.port);
        break;
    case MANAGER_REMOVE:
        rc = manager_ports_copy(&next, &s->ports) == 0 ? manager_ports_remove(&next, cmd->port.port)
                                                       : -1;
        if (rc != 0)
            snprintf(why, whylen, "port %u was not added through the API", cmd->port.port);
        break;
    }
    if (rc == 0)
        rc = manager_change(s, &next, why, whylen);
    manager_ports_free(&next);
    if (rc != 0)
        return -1;
    if (cmd->verb == MANAGER_ADD)
        log_info("manager: port %u added (%s)", cmd->port.port,
                 crypto_method_info(cmd->port.method)->name);
    else
        log_info("manager: port %u removed", cmd->port.port);
    memcpy(s->reply, "ok", 2);
    return 2;
}

static void manager_read_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct manager_server *s = io->data;
    char buf[MANAGER_DATAGRAM_MAX + 1], why[512];
    (void)loop, (void)revents;

    /* a bounded batch per wake-up: a flood cannot hold the master's loop */
    for (int k = 0; k < 64; k++) {
        struct sockaddr_storage from;
        socklen_t fromlen = sizeof from;
        struct manager_cmd cmd;
        ssize_t n = recvfrom(s->fd, buf, sizeof buf, MSG_DONTWAIT | MSG_TRUNC,
                             (struct sockaddr *)&from, &fromlen);
        if (n < 0)
            return;
        int len = -1;
        if (n > MANAGER_DATAGRAM_MAX)
            snprintf(why, sizeof why, "a command of %zd bytes", n);
        else
            len = manager_parse(buf, (size_t)n, &cmd, why, sizeof why);
        if (len == 0)
            len = manager_execute(s, &cmd, why, sizeof why);
        explicit_bzero(&cmd.port.password, sizeof cmd.port.password);
        if (len < 0) {
            log_event(&s->rl_bad, "%s", why);
            manager_send(s, "err", 3, &from, fromlen);
            continue;
        }
        if (fromlen > sizeof(sa_family_t)) { /* an unnamed unix peer cannot be answered */
            s->panel = from;
            s->panel_len = fromlen;
        }
        manager_send(s, s->list ? s->list : s->reply, (size_t)len, &from, fromlen);
        manager_list_drop(s);
    }
}

static void manager_stat_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct manager_server *s = t->data;
    (void)loop, (void)revents;
    int len = s->panel_len ? manager_stat_text(s) : -1;
    if (len > 0)
        manager_send(s, s->reply, (size_t)len, &s->panel, s->panel_len);
    log_event_poll(&s->rl_bad);
}

/* The unix socket, mode 0600 from its creation (umask around bind: no window in which another
 * user could connect). A stale file from a previous run is replaced. */
static int manager_open_unix(struct manager_server *s, const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct stat st;

    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    s->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (s->fd >= 0 && lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(path);
    mode_t old = umask(0177);
    int rc = s->fd < 0 ? -1 : bind(s->fd, (struct sockaddr *)&sa, sizeof sa);
    umask(old);
    if (rc != 0 || chmod(path, 0600) != 0 || stat(path, &st) != 0) {
        snprintf(err, errlen, "manager_address %s: %s", path, strerror(errno));
        return -1;
    }
    snprintf(s->unix_path, sizeof s->unix_path, "%s", path);
    s->unix_dev = st.st_dev;
    s->unix_ino = st.st_ino;
    return 0;
}

static int manager_open_udp(struct manager_server *s, const struct netaddr_endpoint *e, char *err,
                            size_t errlen)
{
    const struct netaddr_target *t = &e->target;
    int one = 1;
    s->fd = socket(t->addr.ss_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    /* SO_REUSEPORT: during a binary upgrade the new master binds the address while the old one
     * still holds it; a panel's datagrams reach one of them until the old one leaves */
    if (s->fd < 0 || setsockopt(s->fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
        bind(s->fd, (const struct sockaddr *)&t->addr, t->addrlen) != 0) {
        snprintf(err, errlen, "manager_address %s: %s", t->host, strerror(errno));
        return -1;
    }
    return 0;
}

struct manager_server *manager_server_new(struct ev_loop *loop, const struct config *c,
                                          const struct manager_ports *initial,
                                          const struct manager_hooks *hooks, char *err,
                                          size_t errlen)
{
    struct manager_server *s = calloc(1, sizeof *s);

    if (!s || !(s->reply = malloc(MANAGER_REPLY_MAX)) ||
        (c->manager_state && !(s->state_path = strdup(c->manager_state))) ||
        manager_ports_copy(&s->ports, initial) != 0) {
        snprintf(err, errlen, "manager: out of memory");
        manager_server_free(s);
        return NULL;
    }
    s->fd = -1;
    if ((c->manager_is_unix ? manager_open_unix(s, c->manager_path, err, errlen)
                            : manager_open_udp(s, &c->manager, err, errlen)) != 0) {
        manager_server_free(s);
        return NULL;
    }
    s->loop = loop;
    s->hooks = *hooks;
    s->method = c->method;
    s->rl_bad =
        (struct log_ratelimit)LOG_RATELIMIT_INIT("manager: refused commands", LOG_LEVEL_WARN, 10.0);
    ev_io_init(&s->io, manager_read_cb, s->fd, EV_READ);
    s->io.data = s;
    ev_io_start(loop, &s->io);
    ev_timer_init(&s->stat_timer, manager_stat_cb, MANAGER_STAT_INTERVAL, MANAGER_STAT_INTERVAL);
    s->stat_timer.data = s;
    ev_timer_start(loop, &s->stat_timer);
    log_info("manager: the ss-manager API listens on %s (%d ports added through it)",
             c->manager_address, s->ports.n);
    return s;
}

const struct manager_ports *manager_server_ports(const struct manager_server *s)
{
    return &s->ports;
}

void manager_server_set_method(struct manager_server *s, enum crypto_method m)
{
    s->method = m;
}

void manager_server_free(struct manager_server *s)
{
    struct stat st;
    if (!s)
        return;
    if (s->loop) {
        ev_io_stop(s->loop, &s->io);
        ev_timer_stop(s->loop, &s->stat_timer);
        log_event_flush(&s->rl_bad);
    }
    if (s->fd >= 0)
        close(s->fd);
    /* unlinked only when it is still ours: after a binary upgrade the new master's is there */
    if (s->unix_path[0] && stat(s->unix_path, &st) == 0 && st.st_dev == s->unix_dev &&
        st.st_ino == s->unix_ino)
        unlink(s->unix_path);
    manager_ports_free(&s->ports);
    free(s->state_path);
    free(s->reply);
    manager_list_drop(s);
    free(s);
}
