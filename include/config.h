/* config.h: the one validated configuration. config_load() reads a shadowsocks-libev compatible
 * JSON file (plus reuseproxy's own keys) into struct config; every error names file:line:column.
 * The struct is read-only once workers are forked. */
#ifndef RP_CONFIG_H
#define RP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

enum config_role { ROLE_SERVER = 0, ROLE_LOCAL, ROLE_TUNNEL };
enum config_balance { BALANCE_REUSEPORT = 0, BALANCE_SHARED, BALANCE_DISPATCH };
enum config_mode { MODE_TCP_ONLY = 0, MODE_TCP_AND_UDP, MODE_UDP_ONLY };

#define CONFIG_MAX_SERVERS 8

struct config {
    char *path;                      /* file it came from, or NULL (command line only) */

    /* shadowsocks-libev keys */
    char *server[CONFIG_MAX_SERVERS]; /* "server": a string or an array of strings */
    int n_server;
    int server_port;                 /* 0 = unset */
    char *password;                  /* NULL = unset */
    char *key;                       /* base64, NULL = unset */
    char *method;                    /* validated name, default "chacha20-ietf-poly1305" */
    int timeout;                     /* seconds, default 60 */
    enum config_mode mode;           /* default tcp_only, as libev */
    bool fast_open;
    bool reuse_port;
    bool no_delay;
    bool ipv6_first;
    char *nameserver;                /* "1.1.1.1" or "1.1.1.1,8.8.8.8" (optionally :port), NULL */
    char *local_address;             /* default "127.0.0.1" */
    int local_port;                  /* 0 = unset */
    char *tunnel_address;            /* "host:port", tunnel role */
    char *user;
    int nofile;                      /* 0 = leave RLIMIT_NOFILE */
    char *acl;                       /* path of a libev ACL file */
    bool use_syslog;

    /* reuseproxy's own keys */
    enum config_role role;           /* default server */
    int workers;                     /* default: online CPUs; 0 = single process */
    enum config_balance balance;     /* default reuseport */
    bool block_private;              /* default true */
    int udp_timeout;                 /* seconds, default 300 */
    int udp_max_associations;        /* default 65536 */
    char *metrics_address;           /* "127.0.0.1:9100", NULL = off */
    int drain_timeout;               /* seconds, default 30 */
    int connect_timeout;             /* seconds, default 10 */
    bool replay_protection;          /* default true */
    int replay_capacity;             /* salts remembered, default 1048576 */
    int verbose;                     /* 0..2 from -v / "verbose" */
};

/* Fills c with every default. */
void config_defaults(struct config *c);

/* Loads path over the defaults already in c. On error returns -1 and writes a message of the
 * form "FILE:LINE:COLUMN: what was expected" into err. Warnings (libev keys that reuseproxy
 * accepts but does not implement) are logged with log_warn, naming the key and position. */
int config_load(struct config *c, const char *path, char *err, size_t errlen);

/* Same, from a string; name stands for the file name in messages. */
int config_load_string(struct config *c, const char *json, const char *name, char *err,
                       size_t errlen);

/* Cross-key checks after file and command line are merged (a server role needs a port and a
 * password or key; a tunnel needs tunnel_address; a placeholder password on a non-loopback
 * address is refused...). Returns -1 with a message in err. */
int config_validate(const struct config *c, char *err, size_t errlen);

void config_free(struct config *c);

const char *config_role_name(enum config_role r);
const char *config_balance_name(enum config_balance b);
const char *config_mode_name(enum config_mode m);

#endif
