/* config_live.c: which reloads running workers can take without being replaced (issue 15).
 *
 * A reload either replaces every worker (supervise.c: new workers beside the old, which drain)
 * or, when only the users of a server's ports changed or ports were added or removed, is
 * applied live: each worker gets the new
 * user list over its control channel (control.h) and keeps every session of a user that did not
 * change. This file is the one place that says which: config_live_blocker() compares two
 * validated configurations and names the first setting whose change needs new workers.
 *
 * It compares by elimination, so that a setting added later is safe by default: copies of both
 * configurations have every string compared and then cleared, the users (the live part) and the
 * file positions cleared, and whatever is left must be the same bytes. A field this file does
 * not know about makes the copies differ, and so a full replacement, never a wrong live apply. */
#include "autoconfig.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

/* Typed settings named in the message when they differ; any other difference is "settings". */
struct config_live_field {
    const char *name;
    size_t offset, size;
};

#define LIVE_FIELD(key, f)                                                                         \
    {                                                                                              \
        key, offsetof(struct config, f), sizeof(((struct config *)0)->f)                           \
    }
static const struct config_live_field config_live_fields[] = {
    LIVE_FIELD("method", method),
    LIVE_FIELD("timeout", timeout),
    LIVE_FIELD("mode", mode),
    LIVE_FIELD("fast_open", fast_open),
    LIVE_FIELD("no_delay", no_delay),
    LIVE_FIELD("ipv6_first", ipv6_first),
    LIVE_FIELD("nofile", nofile),
    LIVE_FIELD("block_private", block_private),
    LIVE_FIELD("udp_timeout", udp_timeout),
    LIVE_FIELD("udp_max_associations", udp_max_associations),
    LIVE_FIELD("drain_timeout", drain_timeout),
    LIVE_FIELD("connect_timeout", connect_timeout),
    LIVE_FIELD("replay_protection", replay_protection),
    LIVE_FIELD("replay_capacity", replay_capacity),
    LIVE_FIELD("verbose", verbose),
    LIVE_FIELD("max_handshakes_per_source", max_handshakes_per_source),
    LIVE_FIELD("keep_alive", keep_alive),
    LIVE_FIELD("mptcp", mptcp),
    LIVE_FIELD("fwmark", fwmark),
    LIVE_FIELD("proxy_protocol", proxy_protocol),
    LIVE_FIELD("proxy_protocol_from", proxy_protocol_from),
    LIVE_FIELD("shared_store", shared),
};

static bool config_live_same_text(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Compares the string at *a and *b; when they are the same, clears both (so the byte
 * comparison that follows ignores the pointers). Returns false when they differ. */
static bool config_live_text(char **a, char **b)
{
    if (!config_live_same_text(*a, *b))
        return false;
    *a = *b = NULL;
    return true;
}

/* Clears the pointers of a's and b's copies after comparing what they point to; NULL when
 * all are the same, else the key that differs. */
static const char *config_live_strings(struct config *a, struct config *b)
{
    struct {
        const char *key;
        size_t offset;
    } texts[] = {
        {"password", offsetof(struct config, password)},
        {"key", offsetof(struct config, key)},
        {"nameserver", offsetof(struct config, nameserver)},
        {"local_address", offsetof(struct config, local_address)},
        {"tunnel_address", offsetof(struct config, tunnel_address)},
        {"user", offsetof(struct config, user)},
        {"acl", offsetof(struct config, acl)},
        {"metrics_address", offsetof(struct config, metrics_address)},
        {"server_url", offsetof(struct config, server_url)},
        {"local_ipv4_address", offsetof(struct config, local_ipv4_address)},
        {"local_ipv6_address", offsetof(struct config, local_ipv6_address)},
        {"outbound_bind_interface", offsetof(struct config, outbound_bind_interface)},
        {"shared_store", offsetof(struct config, shared.url)},
        {"shared_store_failure", offsetof(struct config, shared.failure_text)},
        {"shared_store_users", offsetof(struct config, shared.users_key)},
        {"plugin", offsetof(struct config, plugin.plugin)},
        {"plugin_opts", offsetof(struct config, plugin.plugin_opts)},
        {"manager_address", offsetof(struct config, manager_address)},
        {"manager_state", offsetof(struct config, manager_state)},
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        if (!config_live_text((char **)((char *)a + texts[i].offset),
                              (char **)((char *)b + texts[i].offset)))
            return texts[i].key;
    for (int i = 0; i < CONFIG_MAX_PLUGIN_ARGS; i++)
        if (!config_live_text(&a->plugin.plugin_args[i], &b->plugin.plugin_args[i]))
            return "plugin_args";
    for (int i = 0; i < CONFIG_MAX_SERVERS; i++)
        if (!config_live_text(&a->server_password[i], &b->server_password[i]))
            return "servers";
    /* the local role's SOCKS and HTTP credentials are read by its workers at start */
    if (a->local_users || b->local_users)
        return "local_users";
    a->path = b->path = NULL; /* the same file, or the API's own configuration */
    return NULL;
}

/* One port's settings other than its users: NULL when the same, else the key at fault. */
static const char *config_live_port(const struct config_port *pa, const struct config_port *pb)
{
    struct config_port x, y;

    if (pa->port != pb->port)
        return "server_port";
    if (pa->method != pb->method)
        return "method";
    if (pa->mode != pb->mode)
        return "mode";
    memcpy(&x, pa, sizeof x);
    memcpy(&y, pb, sizeof y);
    x.users = y.users = NULL;
    x.n_users = y.n_users = 0;
    x.metrics_slot = y.metrics_slot = 0; /* the master's bookkeeping */
    return memcmp(&x, &y, sizeof x) != 0 ? "password" : NULL;
}

static bool config_live_same_users(const struct config_port *pa, const struct config_port *pb)
{
    if (pa->n_users != pb->n_users)
        return false;
    for (int u = 0; u < pa->n_users; u++)
        if (!config_live_same_text(pa->users[u].name, pb->users[u].name) ||
            pa->users[u].key.len != pb->users[u].key.len ||
            memcmp(pa->users[u].key.bytes, pb->users[u].key.bytes, pa->users[u].key.len) != 0)
            return false;
    return true;
}

/* The index of port number port in c, or -1. */
static int config_live_port_index(const struct config *c, uint16_t port)
{
    for (int i = 0; i < c->n_port; i++)
        if (c->ports[i].port == port)
            return i;
    return -1;
}

/* Whether port i of a and port j of b listen on the same addresses, in the same order. */
static bool config_live_same_listen(const struct config *a, int i, const struct config *b, int j)
{
    int x = 0, y = 0;

    for (;;) {
        while (x < a->n_listen && a->listen_port[x] != i)
            x++;
        while (y < b->n_listen && b->listen_port[y] != j)
            y++;
        if (x == a->n_listen || y == b->n_listen)
            return x == a->n_listen && y == b->n_listen;
        if (memcmp(&a->listen[x++], &b->listen[y++], sizeof a->listen[0]) != 0)
            return false;
    }
}

/* The ports and the listen list, compared and then cleared: a port that had users and still
 * has some may change them (the per-user counters and the key set's shape are set up when a
 * worker starts); a port may be added or removed (its own sockets, master_live.c); nothing
 * else of a port that stays may change. NULL, or the key at fault. */
static const char *config_live_ports(struct config *a, struct config *b)
{
    bool changed = a->n_port != b->n_port;
    const char *why;

    if (!a->listen_port || !b->listen_port) /* one port, one listen list */
        if (a->n_listen != b->n_listen || a->n_port != 1 || b->n_port != 1 ||
            memcmp(a->listen, b->listen, (size_t)a->n_listen * sizeof a->listen[0]) != 0)
            return "server";
    for (int i = 0; i < a->n_port; i++) {
        const struct config_port *pa = &a->ports[i];
        int j = config_live_port_index(b, pa->port);
        if (j < 0) { /* removed */
            changed = true;
            continue;
        }
        const struct config_port *pb = &b->ports[j];
        if ((why = config_live_port(pa, pb)))
            return why;
        if (a->listen_port && b->listen_port && !config_live_same_listen(a, i, b, j))
            return "server";
        if ((pa->n_users == 0) != (pb->n_users == 0))
            return "users";
        changed = changed || !config_live_same_users(pa, pb);
    }
    for (int j = 0; j < b->n_port; j++) /* added */
        changed = changed || config_live_port_index(a, b->ports[j].port) < 0;
    /* what the ports were made of: compared above through the ports themselves (a server's
     * "servers" entries are its ports: their addresses, methods and passwords) */
    if (a->n_servers_entries && b->n_servers_entries) {
        memset(a->server, 0, sizeof a->server);
        memset(b->server, 0, sizeof b->server);
        memset(a->server_method, 0, sizeof a->server_method);
        memset(b->server_method, 0, sizeof b->server_method);
        memset(a->server_method_set, 0, sizeof a->server_method_set);
        memset(b->server_method_set, 0, sizeof b->server_method_set);
        memset(a->server_password, 0, sizeof a->server_password);
        memset(b->server_password, 0, sizeof b->server_password);
        a->n_server = b->n_server = a->n_servers_entries = b->n_servers_entries = 0;
    }
    a->ports = b->ports = NULL;
    a->n_port = b->n_port = 0;
    a->listen = b->listen = NULL;
    a->n_listen = b->n_listen = 0;
    a->listen_port = b->listen_port = NULL;
    a->port_sources = b->port_sources = NULL;
    a->n_port_sources = b->n_port_sources = 0;
    a->file_port_source = b->file_port_source = false; /* the manager API's ports beside it */
    a->n_manager_ports = b->n_manager_ports = 0;
    a->users = b->users = NULL;
    a->n_users = b->n_users = 0;
    /* nothing changed at all: a reload replaces the workers, which re-reads what the
     * configuration only names (the ACL file, resolv.conf) */
    return changed ? NULL : "nothing";
}

const char *config_live_blocker(const struct config *old, const struct config *new)
{
    struct config *a = malloc(sizeof *a), *b = malloc(sizeof *b);
    const char *why = "out of memory";

    if (!a || !b)
        goto out;
    memcpy(a, old, sizeof *a);
    memcpy(b, new, sizeof *b);
    if (old->role != ROLE_SERVER || new->role != ROLE_SERVER) {
        why = "role";
        goto out;
    }
    if ((why = config_live_ports(a, b)) || (why = config_live_strings(a, b)))
        goto out;
    memset(a->pos, 0, sizeof a->pos);
    memset(b->pos, 0, sizeof b->pos);
    why = NULL;
    if (memcmp(a, b, sizeof *a) != 0) {
        why = "settings other than users";
        for (size_t i = 0; i < sizeof config_live_fields / sizeof config_live_fields[0]; i++) {
            const struct config_live_field *f = &config_live_fields[i];
            if (memcmp((char *)a + f->offset, (char *)b + f->offset, f->size) != 0) {
                why = f->name;
                break;
            }
        }
    }
out:
    /* the copies share the originals' strings and keys: only the blocks are freed */
    if (a)
        explicit_bzero(a, sizeof *a);
    if (b)
        explicit_bzero(b, sizeof *b);
    free(a);
    free(b);
    return why;
}
